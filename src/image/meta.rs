//! `meta.tar.xz`: the image's LXC config lines, template list, excludes, expiry and
//! create message. Read with limits; only the known plain file names are taken.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::error::{Error, IoContext, Result};
use crate::rootfs::{self, Root};

/// Files of meta.tar.xz that rlxc keeps in its cache.
pub const FILES: &[&str] = &[
    "config",
    "config-user",
    "templates",
    "excludes-user",
    "expiry",
    "create-message",
];
const MAX_META_FILE: u64 = 1 << 20;
const MAX_TEMPLATE_FILE: u64 = 1 << 20;

#[derive(Debug, Default, Clone)]
pub struct Meta {
    pub config: String,
    pub templates: Vec<String>,
    pub excludes_user: String,
    pub expiry: Option<i64>,
    pub create_message: Option<String>,
}

/// Extract the known files of a meta tarball (already decompressed) into `dir`.
pub fn extract(r: impl Read, dir: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(r);
    let bad = |e| Error::Image {
        what: "meta.tar.xz".into(),
        source: e,
    };
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(path.strip_prefix(b"./").unwrap_or(&path)).into_owned();
        if !FILES.contains(&name.as_str()) || entry.header().entry_type() != tar::EntryType::Regular
        {
            continue;
        }
        if entry.size() > MAX_META_FILE {
            return Err(Error::hostile(format!(
                "meta.tar.xz member {name} is {} bytes",
                entry.size()
            )));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(bad)?;
        std::fs::write(dir.join(&name), data).ctx("write", dir.join(&name))?;
    }
    Ok(())
}

/// Write a meta tarball (xz, as LXC's images have it) of `files` (name, text) to `path`.
pub fn write(path: &Path, files: &[(&str, String)], mtime: u64) -> Result<()> {
    let out = std::fs::File::options()
        .write(true)
        .create_new(true)
        .open(path)
        .ctx("create", path)?;
    let mut ar = tar::Builder::new(xz2::write::XzEncoder::new(out, 6));
    for (name, text) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(mtime);
        h.set_entry_type(tar::EntryType::Regular);
        ar.append_data(&mut h, name, text.as_bytes())
            .ctx("write", path)?;
    }
    let file = ar
        .into_inner()
        .and_then(|xz| xz.finish())
        .ctx("write", path)?;
    file.sync_all().ctx("write", path)
}

fn read_opt(dir: &Path, name: &str) -> Result<Option<String>> {
    match std::fs::read(dir.join(name)) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", dir.join(name), e)),
    }
}

impl Meta {
    pub fn load(dir: &Path) -> Result<Self> {
        let expiry = read_opt(dir, "expiry")?.and_then(|s| s.trim().parse::<i64>().ok());
        let templates = read_opt(dir, "templates")?
            .unwrap_or_default()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        Ok(Meta {
            config: read_opt(dir, "config")?.unwrap_or_default(),
            templates,
            excludes_user: read_opt(dir, "excludes-user")?.unwrap_or_default(),
            expiry,
            create_message: read_opt(dir, "create-message")?.filter(|m| !m.trim().is_empty()),
        })
    }
}

/// Values substituted in template files, as LXC's download template does.
pub struct TemplateVars<'a> {
    pub name: &'a str,
    pub path: &'a str,
    pub rootfs: &'a str,
    pub template_config: &'a str,
    pub hook_dir: &'a str,
}

/// Substitute LXC_* in each listed file inside `root`. Paths resolve inside the rootfs;
/// missing files are skipped like LXC does; non-regular or huge files are refused.
pub fn apply_templates(root: &Root, list: &[String], vars: &TemplateVars) -> Result<usize> {
    let mut done = 0;
    for path in list {
        let comps = rootfs::components(path.as_bytes(), "templates entry")?;
        if comps.is_empty() {
            return Err(Error::hostile(format!(
                "templates entry {path:?} names the rootfs itself"
            )));
        }
        let rel = rootfs::join(&comps);
        let disp = root.display(&rel);
        let fd = match root.openat(&rel, OFlag::O_RDWR, 0) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => return Err(e).ctx("open template file", &disp),
        };
        let st = nix::sys::stat::fstat(fd.as_fd()).ctx("inspect", &disp)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(Error::hostile(format!(
                "templates entry {path:?} is not a regular file"
            )));
        }
        if st.st_size as u64 > MAX_TEMPLATE_FILE {
            return Err(Error::hostile(format!(
                "templates entry {path:?} is {} bytes",
                st.st_size
            )));
        }
        let mut file = std::fs::File::from(fd);
        let mut text = String::new();
        if file.read_to_string(&mut text).is_err() {
            continue; // binary file: nothing to substitute
        }
        let new = substitute(&text, vars);
        if new != text {
            use std::io::{Seek, Write};
            file.set_len(0).ctx("truncate", &disp)?;
            file.rewind().ctx("rewind", &disp)?;
            file.write_all(new.as_bytes()).ctx("write", &disp)?;
            done += 1;
        }
    }
    Ok(done)
}

pub fn substitute(text: &str, v: &TemplateVars) -> String {
    text.replace("LXC_NAME", v.name)
        .replace("LXC_PATH", v.path)
        .replace("LXC_ROOTFS", v.rootfs)
        .replace("LXC_TEMPLATE_CONFIG", v.template_config)
        .replace("LXC_HOOK_DIR", v.hook_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars<'static> {
        TemplateVars {
            name: "web1",
            path: "/var/lib/rlxc/web1",
            rootfs: "/var/lib/rlxc/web1/rootfs",
            template_config: "/usr/share/rlxc/config",
            hook_dir: "/usr/share/rlxc/hooks",
        }
    }

    #[test]
    fn substitutes_all_names() {
        assert_eq!(
            substitute("127.0.1.1 LXC_NAME\nLXC_ROOTFS LXC_PATH", &vars()),
            "127.0.1.1 web1\n/var/lib/rlxc/web1/rootfs /var/lib/rlxc/web1"
        );
    }

    #[test]
    fn templates_stay_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root_dir = t.path().join("rootfs");
        std::fs::create_dir_all(root_dir.join("etc")).unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, "LXC_NAME").unwrap();
        std::fs::write(root_dir.join("etc/hostname"), "LXC_NAME\n").unwrap();
        // A planted absolute symlink resolves inside the root, to a file that is missing.
        std::os::unix::fs::symlink(&outside, root_dir.join("etc/evil")).unwrap();
        let root = Root::open(&root_dir).unwrap();
        let list = vec![
            "/etc/hostname".to_string(),
            "/etc/evil".to_string(),
            "/etc/missing".into(),
        ];
        assert_eq!(apply_templates(&root, &list, &vars()).unwrap(), 1);
        assert_eq!(
            std::fs::read_to_string(root_dir.join("etc/hostname")).unwrap(),
            "web1\n"
        );
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "LXC_NAME");
        assert!(apply_templates(&root, &["../../outside".to_string()], &vars()).is_err());
    }
}
