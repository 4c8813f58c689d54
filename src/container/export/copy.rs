//! An import under another name is a copy, another machine: its own hostname (when it
//! had the old name's), in the config and in the rootfs's /etc/hostname and /etc/hosts
//! (what the image's templates wrote at create), MACs of its own, and no address the
//! source reserved.

use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;

use nix::fcntl::OFlag;

use crate::config::{ContainerConfig, HwaddrTemplate};
use crate::error::{IoContext, Result};
use crate::name;
use crate::rootfs::Root;

/// What a copy's veths get: a MAC of its own in LXC's range.
const COPY_HWADDR: &str = "00:16:3e:xx:xx:xx";
/// /etc/hostname and /etc/hosts are small; a larger one is left alone.
const MAX_FILE: u64 = 1 << 20;

pub fn make_copy(cfg: &mut ContainerConfig, old: &str, new: &str) {
    if cfg.hostname.as_deref() == Some(name::hostname_for(old).as_str()) {
        cfg.hostname = Some(name::hostname_for(new));
    }
    for n in &mut cfg.networks {
        if n.hwaddr.is_some() {
            n.hwaddr = COPY_HWADDR.parse::<HwaddrTemplate>().ok();
        }
        n.ipv4_assigned = None;
    }
    cfg.fill_hwaddrs();
}

/// The old hostname replaced by the new one in /etc/hostname (when it is all the file
/// says) and /etc/hosts (as a whole name or its first label), resolved inside `root`.
pub fn rename_host(root: &Root, old: &str, new: &str) -> Result<()> {
    edit(root, b"etc/hostname", |text| {
        (text.trim() == old).then(|| format!("{new}\n"))
    })?;
    edit(root, b"etc/hosts", |text| hosts_renamed(text, old, new))
}

fn hosts_renamed(text: &str, old: &str, new: &str) -> Option<String> {
    let dotted = format!("{old}.");
    let mut changed = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let (body, comment) = line
                .split_once('#')
                .map_or((line, None), |(b, c)| (b, Some(c)));
            let mut out = String::new();
            for (i, word) in body.split_inclusive(char::is_whitespace).enumerate() {
                let bare = word.trim_end();
                let renamed = if i > 0 && bare == old {
                    Some(format!("{new}{}", &word[bare.len()..]))
                } else if i > 0 && bare.starts_with(&dotted) {
                    Some(format!("{new}.{}", &word[dotted.len()..]))
                } else {
                    None
                };
                changed |= renamed.is_some();
                out.push_str(renamed.as_deref().unwrap_or(word));
            }
            match comment {
                Some(c) => format!("{out}#{c}"),
                None => out,
            }
        })
        .collect();
    let trailing = if text.ends_with('\n') { "\n" } else { "" };
    changed.then(|| lines.join("\n") + trailing)
}

/// Rewrite the regular file `rel` in place when `change` says what it becomes; a
/// missing, special or huge file is left as it is (as LXC's templates do).
fn edit(root: &Root, rel: &[u8], change: impl Fn(&str) -> Option<String>) -> Result<()> {
    let disp = root.display(rel);
    let fd = match root.openat(rel, OFlag::O_RDWR | OFlag::O_NONBLOCK, 0) {
        Ok(fd) => fd,
        Err(_) => return Ok(()),
    };
    let st = nix::sys::stat::fstat(fd.as_fd()).ctx("inspect", &disp)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFREG || st.st_size as u64 > MAX_FILE {
        return Ok(());
    }
    let mut file = std::fs::File::from(fd);
    let mut text = String::new();
    if Read::by_ref(&mut file)
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .is_err()
    {
        return Ok(());
    }
    if let Some(new) = change(&text) {
        file.set_len(0).ctx("truncate", &disp)?;
        file.rewind().ctx("rewind", &disp)?;
        file.write_all(new.as_bytes()).ctx("write", &disp)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_renamed_copy_gets_its_own_identity() {
        let mut cfg: ContainerConfig = toml::from_str(
            "hostname = \"web1\"\n[[network]]\ntype = \"veth\"\nhwaddr = \"00:16:3e:01:02:03\"\n\
             ipv4 = \"auto\"\nipv4_assigned = \"10.0.3.250/24\"\n[[network]]\ntype = \"empty\"\n",
        )
        .unwrap();
        make_copy(&mut cfg, "web1", "web2");
        assert_eq!(cfg.hostname.as_deref(), Some("web2"));
        let mac = cfg.networks[0].hwaddr.as_ref().unwrap().to_string();
        assert!(
            mac.starts_with("00:16:3e:") && mac != "00:16:3e:01:02:03",
            "{mac}"
        );
        assert!(!mac.contains('x'), "{mac}");
        assert!(cfg.networks[0].ipv4_assigned.is_none());
        assert!(cfg.networks[1].hwaddr.is_none());

        let mut own: ContainerConfig = toml::from_str("hostname = \"www\"\n").unwrap();
        make_copy(&mut own, "web1", "web2");
        assert_eq!(
            own.hostname.as_deref(),
            Some("www"),
            "a chosen hostname stays"
        );
    }

    #[test]
    fn hosts_lines_name_the_copy() {
        let hosts = "127.0.0.1 localhost\n127.0.1.1 web1 web1.lxc # web1 here\n::1 web10\n";
        assert_eq!(
            hosts_renamed(hosts, "web1", "web2").unwrap(),
            "127.0.0.1 localhost\n127.0.1.1 web2 web2.lxc # web1 here\n::1 web10\n"
        );
        assert!(hosts_renamed("127.0.0.1 localhost\n", "web1", "web2").is_none());
    }

    #[test]
    fn the_rootfs_names_the_copy_and_nothing_outside_is_touched() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("rootfs");
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/hostname"), "web1\n").unwrap();
        let outside = t.path().join("hosts");
        std::fs::write(&outside, "1.2.3.4 web1\n").unwrap();
        std::os::unix::fs::symlink(&outside, r.join("etc/hosts")).unwrap();
        rename_host(&Root::open(&r).unwrap(), "web1", "web2").unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("etc/hostname")).unwrap(),
            "web2\n"
        );
        assert_eq!(std::fs::read_to_string(&outside).unwrap(), "1.2.3.4 web1\n");
    }
}
