//! A running unprivileged container's ids as the host sees them. rlxc-file writes into
//! the root its processes see, through their idmapped mounts: what it makes must be made
//! as the container's root and owned by the host ids the asked-for ids are, else it has
//! no owner there (EOVERFLOW) or the wrong one.

use crate::error::{Error, IoContext, Result};

/// One line of a uid_map or gid_map: `count` ids from `inside` are the host's `outside`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extent {
    inside: u32,
    outside: u32,
    count: u32,
}

/// The id maps of a container's user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mapped {
    uid: Vec<Extent>,
    gid: Vec<Extent>,
}

impl Mapped {
    /// The maps of the user namespace of process `pid`; None when it is the host's own (a
    /// privileged container).
    pub fn of(pid: i32) -> Result<Option<Self>> {
        let ns = |p: &str| std::fs::read_link(p).ctx("read", p);
        if ns(&format!("/proc/{pid}/ns/user"))? == ns("/proc/self/ns/user")? {
            return Ok(None);
        }
        let map = |f: &str| {
            let p = format!("/proc/{pid}/{f}");
            std::fs::read_to_string(&p)
                .ctx("read", &p)
                .map(|t| parse(&t))
        };
        Ok(Some(Mapped {
            uid: map("uid_map")?,
            gid: map("gid_map")?,
        }))
    }

    /// The host ids of the container's `uid` and `gid`.
    pub fn host(&self, uid: u32, gid: u32, name: &str) -> Result<(u32, u32)> {
        let unmapped = |what: &str, id: u32| {
            Error::Usage(format!(
                "{what} {id} is not one of {name}'s ids (it runs in a user namespace that maps \
                 {}): choose one of those",
                describe(if what == "uid" { &self.uid } else { &self.gid })
            ))
        };
        Ok((
            translate(&self.uid, uid).ok_or_else(|| unmapped("uid", uid))?,
            translate(&self.gid, gid).ok_or_else(|| unmapped("gid", gid))?,
        ))
    }
}

fn parse(text: &str) -> Vec<Extent> {
    text.lines()
        .filter_map(|l| {
            let n: Vec<u32> = l
                .split_whitespace()
                .filter_map(|w| w.parse().ok())
                .collect();
            match n[..] {
                [inside, outside, count] => Some(Extent {
                    inside,
                    outside,
                    count,
                }),
                _ => None,
            }
        })
        .collect()
}

fn translate(map: &[Extent], id: u32) -> Option<u32> {
    map.iter()
        .find(|e| id >= e.inside && id - e.inside < e.count)
        .map(|e| e.outside + (id - e.inside))
}

fn describe(map: &[Extent]) -> String {
    let ranges: Vec<String> = map
        .iter()
        .map(|e| format!("{}-{}", e.inside, e.inside + (e.count - 1)))
        .collect();
    if ranges.is_empty() {
        "no ids".into()
    } else {
        ranges.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_translate_through_the_map() {
        let m = Mapped {
            uid: parse("         0    2000000      65536\n"),
            gid: parse("0 3000000 10\n100 4000000 1\n"),
        };
        assert_eq!(m.host(0, 0, "c").unwrap(), (2_000_000, 3_000_000));
        assert_eq!(m.host(1000, 100, "c").unwrap(), (2_001_000, 4_000_000));
        let e = m.host(0, 50, "c").unwrap_err().to_string();
        assert!(e.contains("gid 50") && e.contains("0-9, 100-100"), "{e}");
        assert!(m.host(65536, 0, "c").is_err());
    }
}
