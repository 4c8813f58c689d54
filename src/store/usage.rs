//! Disk use of a container's directory as `du -sx` counts it (allocated blocks, a
//! hardlinked inode once), bounded to that directory: no symlink is followed and no
//! mount point entered (a bind mount made by hand, another file system), every directory
//! opened beneath the top with openat2, so a rename racing the walk (a running
//! container moving its files) cannot lead it out.

use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

use crate::error::{IoContext, Result};

/// Bytes on disk: the whole directory's, and each top-level entry's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub total: u64,
    pub by_entry: BTreeMap<OsString, u64>,
}

impl Usage {
    fn add(&mut self, top: Option<&OsStr>, st: &FileStat) {
        let bytes = (st.st_blocks as u64).saturating_mul(512);
        self.total += bytes;
        if let Some(t) = top {
            *self.by_entry.entry(t.to_os_string()).or_default() += bytes;
        }
    }
}

/// What `dir` takes on disk. Entries that vanish or cannot be read while it runs are left
/// out, not errors: the tree may be in use.
pub fn measure(dir: &Path) -> Result<Usage> {
    let top = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open", dir)?;
    let dev = fstat(&top).ctx("inspect", dir)?.st_dev;
    let mut usage = Usage::default();
    let mut seen = HashSet::new();
    // Directories to read: their path beneath the top, the top-level entry they are in.
    let mut stack: Vec<(Vec<u8>, Option<OsString>)> = vec![(b".".to_vec(), None)];
    while let Some((rel, topname)) = stack.pop() {
        let Ok(fd) = open_beneath(&top, &rel) else {
            continue;
        };
        match fstat(&fd) {
            Ok(st) if st.st_dev == dev => usage.add(topname.as_deref(), &st),
            _ => continue,
        }
        let Ok(mut d) = nix::dir::Dir::from_fd(fd) else {
            continue;
        };
        let names: Vec<Vec<u8>> = d
            .iter()
            .flatten()
            .map(|e| e.file_name().to_bytes().to_vec())
            .filter(|n| n != b"." && n != b"..")
            .collect();
        for n in names {
            let name = OsStr::from_bytes(&n);
            let Ok(st) = fstatat(d.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            let top_of = topname.clone().unwrap_or_else(|| name.to_os_string());
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR {
                // Counted when opened: a mount point is refused there, uncounted.
                stack.push(([&rel[..], b"/", &n].concat(), Some(top_of)));
            } else if st.st_dev == dev && (st.st_nlink <= 1 || seen.insert(st.st_ino)) {
                usage.add(Some(&top_of), &st);
            }
        }
    }
    Ok(usage)
}

/// The directory `rel` beneath `top`: no symlink, no mount crossed, never above `top`.
fn open_beneath(top: &OwnedFd, rel: &[u8]) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_XDEV
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    loop {
        match openat2(top.as_fd(), OsStr::from_bytes(rel), how) {
            // A rename raced the lookup.
            Err(nix::errno::Errno::EAGAIN) => continue,
            r => return r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn blocks(p: &Path) -> u64 {
        std::fs::symlink_metadata(p).unwrap().blocks() * 512
    }

    #[test]
    fn blocks_are_counted_per_top_entry_hardlinks_once_symlinks_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c1");
        std::fs::create_dir_all(d.join("rootfs/etc")).unwrap();
        std::fs::create_dir_all(d.join("snaps/snap0")).unwrap();
        std::fs::write(d.join("rootfs/etc/big"), vec![1u8; 256 << 10]).unwrap();
        std::fs::hard_link(d.join("rootfs/etc/big"), d.join("rootfs/big2")).unwrap();
        std::fs::write(d.join("snaps/snap0/f"), vec![2u8; 64 << 10]).unwrap();
        std::fs::write(d.join("config.toml"), "x").unwrap();
        // Outside, and reached only through links: never counted.
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("huge"), vec![3u8; 1 << 20]).unwrap();
        std::os::unix::fs::symlink(&outside, d.join("rootfs/out")).unwrap();
        std::os::unix::fs::symlink("../../outside", d.join("snaps/up")).unwrap();

        let u = measure(&d).unwrap();
        let rootfs = blocks(&d.join("rootfs"))
            + blocks(&d.join("rootfs/etc"))
            + blocks(&d.join("rootfs/etc/big"))
            + blocks(&d.join("rootfs/out"));
        let snaps = blocks(&d.join("snaps"))
            + blocks(&d.join("snaps/snap0"))
            + blocks(&d.join("snaps/snap0/f"))
            + blocks(&d.join("snaps/up"));
        assert_eq!(u.by_entry[OsStr::new("rootfs")], rootfs);
        assert_eq!(u.by_entry[OsStr::new("snaps")], snaps);
        assert!((256 << 10..512 << 10).contains(&rootfs), "{rootfs}");
        assert_eq!(
            u.total,
            blocks(&d) + rootfs + snaps + blocks(&d.join("config.toml"))
        );
        assert!(measure(&t.path().join("none")).is_err());
    }

    #[test]
    fn a_mount_inside_is_not_entered() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("c1");
        let m = d.join("rootfs/mnt");
        std::fs::create_dir_all(&m).unwrap();
        let before = measure(&d).unwrap().total;
        let src = t.path().join("src");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("huge"), vec![3u8; 1 << 20]).unwrap();
        // A bind mount of the same file system: only openat2's RESOLVE_NO_XDEV sees it.
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = nix::mount::umount2(self.0, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        nix::mount::mount(
            Some(&src),
            &m,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .expect("bind mount (this test runs as root)");
        let _unmount = Unmount(&m);
        let during = measure(&d).unwrap().total;
        assert!(
            during <= before,
            "{during} > {before}: the mount was entered"
        );
    }
}
