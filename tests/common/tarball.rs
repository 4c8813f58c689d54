//! Tar archives built in memory: rootfs and meta tarballs of LXC-format images.

#[allow(unused_imports)]
use super::*;

/// A tar archive assembled member by member, including hostile ones.
pub struct TarBuilder {
    b: tar::Builder<Vec<u8>>,
}

impl Default for TarBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TarBuilder {
    pub fn new() -> Self {
        TarBuilder {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &str, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        // Raw name bytes: tar's set_path refuses '..', and hostile archives need it.
        let bytes = name.as_bytes();
        assert!(bytes.len() < 100, "test member names are short");
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    }

    pub fn dir(mut self, name: &str, mode: u32) -> Self {
        let mut h = Self::header(name, tar::EntryType::Directory, mode, 0);
        h.set_cksum();
        self.b.append(&h, std::io::empty()).unwrap();
        self
    }

    pub fn file(mut self, name: &str, mode: u32, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn owned_file(mut self, name: &str, mode: u32, uid: u64, gid: u64, data: &[u8]) -> Self {
        let mut h = Self::header(name, tar::EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn link(mut self, name: &str, kind: tar::EntryType, target: &str) -> Self {
        let mut h = Self::header(name, kind, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        h.set_cksum();
        self.b.append(&h, std::io::empty()).unwrap();
        self
    }

    pub fn symlink(self, name: &str, target: &str) -> Self {
        self.link(name, tar::EntryType::Symlink, target)
    }

    pub fn hardlink(self, name: &str, target: &str) -> Self {
        self.link(name, tar::EntryType::Link, target)
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// A minimal but plausible system rootfs.
pub fn small_rootfs() -> TarBuilder {
    TarBuilder::new()
        .dir("./", 0o755)
        .dir("./etc/", 0o755)
        .file("./etc/hostname", 0o644, b"LXC_NAME\n")
        .file(
            "./etc/hosts",
            0o644,
            b"127.0.0.1 localhost\n127.0.1.1 LXC_NAME\n",
        )
        .file("./etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n")
        .dir("./bin/", 0o755)
        .file("./bin/init", 0o755, b"#!/bin/sh\n")
        .dir("./sbin/", 0o755)
        .symlink("./sbin/init", "/bin/init")
        .dir("./root/", 0o700)
}

pub fn meta_tar(config: &str, templates: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut t = TarBuilder::new()
        .file("config", 0o644, config.as_bytes())
        .file("templates", 0o644, templates.as_bytes())
        .file(
            "expiry",
            0o644,
            format!("{}\n", now() + 30 * 86400).as_bytes(),
        )
        .file(
            "create-message",
            0o644,
            b"You just created a test container.\n",
        );
    for (n, c) in extra {
        t = t.file(n, 0o644, c.as_bytes());
    }
    t.finish()
}

pub fn default_meta() -> Vec<u8> {
    meta_tar(
        "lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = x86_64\nlxc.apparmor.profile = generated\n",
        "/etc/hostname\n/etc/hosts\n",
        &[],
    )
}
