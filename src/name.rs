//! Container names. A name becomes a directory under lxcpath, a cgroup and a hostname, so it
//! is checked before anything is touched. The rule (`error::NAME_RULE`, the hint every refusal shows):
//! 1-64 of a-z A-Z 0-9 - _ . starting with a letter or digit, no "..". LXC accepts all
//! of these; the first character keeps names clear of options ('-'), rlxc's hidden
//! work directories ('.') and hostnames that would lose it ('_').

use crate::error::{Error, Result};

pub const MAX_LEN: usize = 64;

/// What `validate` accepts, in words.
#[cfg(test)]
const RULE: &str = crate::error::NAME_RULE;

/// Check `name` and return it unchanged when it is safe to use as a directory name,
/// cgroup name and (after `hostname_for`) a hostname.
pub fn validate(name: &str) -> Result<&str> {
    validate_existing(name)?;
    if let Some(c) = name.chars().next().filter(|c| !c.is_ascii_alphanumeric()) {
        return Err(Error::BadName {
            name: name.to_string(),
            reason: format!("it starts with {c:?}, not a letter or digit"),
        });
    }
    Ok(name)
}

/// The rule before names had to start with a letter or digit (`_web` passed): a
/// container made then must stay reachable, so every command but create checks this.
pub fn validate_existing(name: &str) -> Result<&str> {
    let bad = |reason: &str| {
        Err(Error::BadName {
            name: name.to_string(),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > MAX_LEN {
        return bad(&format!(
            "it is {} bytes long, the limit is {MAX_LEN}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return bad(&format!("it contains the control character {:?}", c));
    }
    if name.contains('/') {
        return bad("it contains '/'");
    }
    if name == "." {
        return bad("it is '.', the directory itself");
    }
    if name.contains("..") {
        return bad("it contains '..'");
    }
    if name.starts_with('-') {
        return bad("it starts with '-', which commands would take for an option");
    }
    if name.starts_with('.') {
        return bad("it starts with '.' (names starting with '.' are rlxc's own bookkeeping)");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return bad(&format!("it contains {c:?}"));
    }
    Ok(name)
}

/// A name for an ephemeral clone of `source`: `SOURCE-XXXXXX` (six random letters and
/// digits, as LXC's `lxc-copy -e` does), the source cut so the whole stays valid.
pub fn ephemeral_for(source: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = [0u8; 6];
    if getrandom(&mut bytes).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos() ^ std::process::id());
        bytes = t.to_le_bytes().repeat(2)[..6].try_into().unwrap_or([0; 6]);
    }
    let tail: String = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    let mut head: String = source.chars().take(MAX_LEN - 7).collect();
    while head.ends_with('.') {
        head.pop();
    }
    format!("{head}-{tail}")
}

fn getrandom(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// A valid hostname (RFC 1123 label) derived from a container name: other characters
/// become '-', at most 63 bytes, no leading or trailing '-'.
pub fn hostname_for(name: &str) -> String {
    let mut h: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while h.ends_with('-') {
        h.pop();
    }
    let h = h.trim_start_matches('-').to_string();
    if h.is_empty() {
        "container".into()
    } else {
        h
    }
}

/// Eight hex digits naming an installation (its lxcpath) in host-wide places: cgroups,
/// run directories, the event directory. The lxcpath is taken as written but for its
/// trailing `/` and `.` components, so `-P /var/lib/rlxc/` names the installation
/// `/var/lib/rlxc` does.
pub fn installation_tag(lxcpath: &std::path::Path) -> String {
    let lxcpath: std::path::PathBuf = lxcpath.components().collect();
    let tag: u64 = lxcpath
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
    format!("{:08x}", tag as u32)
}

/// An RFC 1123 label: 1-63 of a-z A-Z 0-9 '-', not starting or ending with '-'.
pub fn is_dns_label(l: &str) -> bool {
    !l.is_empty()
        && l.len() <= 63
        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !l.starts_with('-')
        && !l.ends_with('-')
}

/// The default name for `rlxc-create -t download` without `-n`: "dist-release",
/// made valid (LXC does the same with dist and release).
pub fn default_for_image(dist: &str, release: &str) -> String {
    let raw = format!("{dist}-{release}");
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(MAX_LEN)
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn dns_labels() {
        assert!(is_dns_label("web-1"));
        assert!(!is_dns_label("web1\n00:11:22:33:44:55,set:x"));
        assert!(!is_dns_label("-web"));
        assert!(!is_dns_label("a,b"));
        assert!(!is_dns_label(""));
    }
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in [
            "web1",
            "centos-9-Stream",
            "a",
            "db_2.prod",
            "9x",
            "x_",
            "x.",
            &"x".repeat(64),
        ] {
            assert!(validate(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn rejects_dangerous_names() {
        let long = "x".repeat(65);
        for (n, why) in [
            ("", "empty"),
            ("a/b", "'/'"),
            ("..", "'..'"),
            (".", "'.', the directory itself"),
            ("_x", "starts with '_'"),
            ("a..b", "'..'"),
            ("-rf", "starts with '-'"),
            (".hidden", "starts with '.'"),
            ("tab\there", "control"),
            ("new\nline", "control"),
            ("sp ace", "' '"),
            ("semi;colon", "';'"),
            (long.as_str(), "limit is 64"),
            ("ünï", "'ü'"),
        ] {
            let e = validate(n).expect_err(n).to_string();
            assert!(e.contains(why), "{n:?}: {e}");
        }
    }

    #[test]
    fn the_hint_states_the_rule() {
        let hint = Error::BadName {
            name: String::new(),
            reason: String::new(),
        }
        .hint()
        .unwrap_or_default();
        assert_eq!(hint, RULE);
        for (n, ok) in [
            ("x", true),
            ("_x", false),
            ("-x", false),
            (".x", false),
            ("a..b", false),
        ] {
            assert_eq!(validate(n).is_ok(), ok, "{n}: the rule says {RULE}");
        }
    }

    #[test]
    fn hostnames_are_valid_labels() {
        assert_eq!(hostname_for("web1"), "web1");
        assert_eq!(hostname_for("db_2.prod"), "db-2-prod");
        assert_eq!(hostname_for("x_"), "x");
        assert_eq!(hostname_for(&"a".repeat(64)).len(), 63);
    }

    #[test]
    fn default_names_from_images() {
        assert_eq!(default_for_image("centos", "9-Stream"), "centos-9-Stream");
        assert!(validate(&default_for_image("opensuse", "tumbleweed")).is_ok());
        assert_eq!(default_for_image("x", "a/b"), "x-a-b");
    }
}
