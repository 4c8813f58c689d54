//! /proc/PID/mountinfo, read once here for every caller (cgroup layout, lxcfs, the file
//! system type of a path): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] -
//! FSTYPE SOURCE SUPER_OPTIONS`, paths with the kernel's octal escapes (`\040`).

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, the fields rlxc reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount id (statx's `stx_mnt_id`).
    pub id: u64,
    /// The directory of its file system mounted here (`/` unless a bind of a subtree).
    pub root: PathBuf,
    pub mountpoint: PathBuf,
    pub fstype: String,
    pub source: String,
    /// The file system's own options (a v1 cgroup's controllers are among them).
    pub super_options: String,
}

/// The mounts in a mountinfo text; a line not of that form is skipped.
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts of this process's mount namespace.
pub fn read_self() -> std::io::Result<Vec<Mount>> {
    read(Path::new("/proc/self/mountinfo"))
}

/// The mounts a mountinfo file (`/proc/PID/mountinfo`) lists.
pub fn read(file: &Path) -> std::io::Result<Vec<Mount>> {
    Ok(parse(&std::fs::read_to_string(file)?))
}

fn parse_line(line: &str) -> Option<Mount> {
    // The optional fields vary in number; " - " ends them.
    let (left, right) = line.split_once(" - ")?;
    let l: Vec<&str> = left.split_whitespace().collect();
    let r: Vec<&str> = right.split_whitespace().collect();
    if l.len() < 5 || r.len() < 3 {
        return None;
    }
    Some(Mount {
        id: l[0].parse().ok()?,
        root: unescape(l[3]),
        mountpoint: unescape(l[4]),
        fstype: r[0].to_string(),
        source: r[1].to_string(),
        super_options: r[2].to_string(),
    })
}

/// The kernel's octal escapes (`\040` for a blank, `\134` for a backslash) undone.
fn unescape(s: &str) -> PathBuf {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (b[i], oct) {
            (b'\\', Some(c)) => {
                out.push(c);
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_with_and_without_optional_fields() {
        let text = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:10 master:2 - cgroup cgroup rw,cpu
90 22 0:50 /sub /var/lib/lxc\\040fs\\134x rw - fuse.lxcfs lxcfs rw,user_id=0
not a mount line
7 1 0:9 / /short rw - tmpfs
x 1 0:9 / /bad-id rw - tmpfs tmpfs rw
";
        let m = parse(text);
        assert_eq!(m.len(), 3, "{m:?}");
        assert_eq!(m[0].id, 22);
        assert_eq!(m[0].mountpoint, PathBuf::from("/proc"));
        assert_eq!(
            (m[1].fstype.as_str(), m[1].super_options.as_str()),
            ("cgroup", "rw,cpu")
        );
        assert_eq!(m[2].root, PathBuf::from("/sub"));
        assert_eq!(m[2].mountpoint, PathBuf::from("/var/lib/lxc fs\\x"));
        assert_eq!(
            (m[2].fstype.as_str(), m[2].source.as_str()),
            ("fuse.lxcfs", "lxcfs")
        );
    }

    #[test]
    fn escapes_that_are_not_octal_stay() {
        assert_eq!(unescape("/a\\09b\\"), PathBuf::from("/a\\09b\\"));
        assert_eq!(unescape("/a\\011b"), PathBuf::from("/a\tb"));
    }

    #[test]
    fn this_process_has_a_root() {
        let m = read_self().unwrap();
        assert!(m.iter().any(|m| m.mountpoint == Path::new("/")), "{m:?}");
    }
}
