//! Meta `excludes-user` lists: parsed (a path leaving the rootfs refused) and matched
//! against member paths the way GNU tar's --exclude matches.

use crate::error::{Error, Result};

/// tar-style glob: `*` and `?` (matching `/` too, as GNU tar's --exclude does), against
/// the member path with or without its leading "./".
pub fn glob_match(pat: &[u8], path: &[u8]) -> bool {
    let pat = pat.strip_prefix(b"./").unwrap_or(pat);
    let pat = pat.strip_prefix(b"/").unwrap_or(pat);
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && m(p, &s[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pat, path)
}

/// Parse an `excludes-user` list: blank lines dropped, `..` refused.
pub fn parse_excludes(text: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.split('/').any(|c| c == "..") {
            return Err(Error::hostile(format!(
                "excludes entry {line:?} leaves the rootfs"
            )));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"./dev/*", b"dev/null"));
        assert!(glob_match(b"dev/tty?", b"dev/tty1"));
        assert!(!glob_match(b"dev/tty?", b"dev/tty10"));
        assert!(!glob_match(b"./dev/*", b"etc/dev"));
    }

    #[test]
    fn excludes_refuse_escapes() {
        assert_eq!(
            parse_excludes("\n./dev/*\n\n").unwrap(),
            vec!["./dev/*".to_string()]
        );
        assert!(parse_excludes("../../etc/passwd").is_err());
    }
}
