//! POSIX ACLs from GNU tar's text form to the kernel's xattr form.

use std::io::Read;

use nix::fcntl::OFlag;

use crate::rootfs::Root;

/// User and group names of the image (its /etc/passwd and /etc/group, read inside the
/// rootfs): GNU tar stores ACL qualifiers as names.
#[derive(Default)]
pub(super) struct IdMaps {
    users: std::collections::HashMap<String, u32>,
    groups: std::collections::HashMap<String, u32>,
}

impl IdMaps {
    pub(super) fn load(root: &Root) -> Self {
        let read = |rel: &[u8]| -> std::collections::HashMap<String, u32> {
            let Ok(fd) = root.openat(rel, OFlag::O_RDONLY, 0) else {
                return Default::default();
            };
            let mut text = String::new();
            let _ = std::fs::File::from(fd)
                .take(4 << 20)
                .read_to_string(&mut text);
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?.to_string();
                    let id = f.nth(1)?.parse().ok()?;
                    Some((name, id))
                })
                .collect()
        };
        IdMaps {
            users: read(b"etc/passwd"),
            groups: read(b"etc/group"),
        }
    }

    pub(super) fn lookup(&self, group: bool, name: &str) -> Option<u32> {
        if group { &self.groups } else { &self.users }
            .get(name)
            .copied()
    }
}

/// Convert a POSIX.1e ACL in text form (what GNU tar stores in SCHILY.acl.*) to the
/// binary `system.posix_acl_*` xattr. Named qualifiers are resolved with `resolve`
/// (is_group, name) against the image's own user database, never the host's.
pub fn acl_text_to_xattr(
    text: &[u8],
    resolve: &dyn Fn(bool, &str) -> Option<u32>,
) -> std::result::Result<Option<Vec<u8>>, String> {
    const UNDEFINED: u32 = u32::MAX;
    let text = std::str::from_utf8(text).map_err(|_| "not UTF-8".to_string())?;
    let mut entries: Vec<(u16, u16, u32)> = Vec::new();
    for raw in text.split(['\n', ',']) {
        let e = raw.split('#').next().unwrap_or("").trim();
        if e.is_empty() {
            continue;
        }
        let parts: Vec<&str> = e.split(':').collect();
        if parts.len() != 3 {
            return Err(format!("bad entry {e:?}"));
        }
        let perm = parse_perm(parts[2]).ok_or_else(|| format!("bad permissions in {e:?}"))?;
        let qual = parts[1];
        let id = |group: bool| {
            qual.parse::<u32>()
                .ok()
                .or_else(|| resolve(group, qual))
                .ok_or_else(|| {
                    format!(
                        "unknown {} {qual:?} in {e:?}",
                        if group { "group" } else { "user" }
                    )
                })
        };
        let (tag, id) = match (parts[0], qual.is_empty()) {
            ("user" | "u", true) => (0x01, UNDEFINED),
            ("user" | "u", false) => (0x02, id(false)?),
            ("group" | "g", true) => (0x04, UNDEFINED),
            ("group" | "g", false) => (0x08, id(true)?),
            ("mask" | "m", _) => (0x10, UNDEFINED),
            ("other" | "o", _) => (0x20, UNDEFINED),
            _ => return Err(format!("bad tag in {e:?}")),
        };
        entries.push((tag, perm, id));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    entries.sort_by_key(|(tag, _, id)| (*tag, *id));
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(Some(out))
}

fn parse_perm(p: &str) -> Option<u16> {
    let mut v = 0;
    for c in p.chars() {
        match c {
            'r' => v |= 4,
            'w' => v |= 2,
            'x' => v |= 1,
            '-' => {}
            _ => return None,
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_text_converts_to_xattr() {
        let none = |_: bool, _: &str| None;
        let text = b"user::rw-\nuser:1000:r--\ngroup::r--\nmask::r--\nother::r--\n";
        let bin = acl_text_to_xattr(text, &none).unwrap().unwrap();
        assert_eq!(&bin[..4], &2u32.to_le_bytes());
        assert_eq!(bin.len(), 4 + 5 * 8);
        // user:1000 entry second, tag 2, perm 4, id 1000
        assert_eq!(&bin[12..20], &[2, 0, 4, 0, 0xe8, 0x03, 0, 0]);
        assert!(acl_text_to_xattr(b"user:alice:r--", &none).is_err());
        assert_eq!(acl_text_to_xattr(b"\n", &none).unwrap(), None);
        let adm = |g: bool, n: &str| (g && n == "adm").then_some(4);
        let text = b"user::rwx\ngroup::r-x\ngroup:adm:r-x\nmask::r-x\nother::r-x";
        let bin = acl_text_to_xattr(text, &adm).unwrap().unwrap();
        assert_eq!(&bin[20..28], &[8, 0, 5, 0, 4, 0, 0, 0]);
    }
}
