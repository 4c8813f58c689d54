//! Reading the tar stream: pax extended records (parsed by length, so values may hold
//! newlines, which tar's own reader cannot), GNU long names, and a reader that skips
//! file data cheaply.

use std::io::{self, Read};

use crate::error::{Error, Result};

use super::bad_data;

/// A buffered reader whose relative seeks (tar skipping data that was copied in the
/// kernel) stay inside the buffer when they can, instead of discarding it. It tracks its
/// position itself: tar needs it after every seek, and lseek per member costs.
pub(super) struct SkipReader {
    pub(super) inner: io::BufReader<std::fs::File>,
    pub(super) pos: u64,
}

impl Read for SkipReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for SkipReader {
    fn seek(&mut self, pos: io::SeekFrom) -> io::Result<u64> {
        match pos {
            io::SeekFrom::Current(n) => {
                self.inner.seek_relative(n)?;
                self.pos = self.pos.checked_add_signed(n).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "seek before start")
                })?;
            }
            other => self.pos = self.inner.seek(other)?,
        }
        Ok(self.pos)
    }
}

/// Pax records and GNU long names that apply to the next member.
#[derive(Default)]
pub(super) struct Extended {
    pub(super) pax: Vec<(String, Vec<u8>)>,
    pub(super) long_name: Option<Vec<u8>>,
    pub(super) long_link: Option<Vec<u8>>,
}

impl Extended {
    pub(super) fn get(&self, key: &str) -> Option<&[u8]> {
        self.pax
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }
}

const MAX_EXTENDED_HEADER: u64 = 1 << 20;

pub(super) fn read_small<R: Read>(entry: &mut tar::Entry<'_, R>, what: &str) -> Result<Vec<u8>> {
    let size = entry.header().size().map_err(|e| bad_data(what, e))?;
    if size > MAX_EXTENDED_HEADER {
        return Err(Error::hostile(format!("{what} of {size} bytes")));
    }
    let mut v = Vec::with_capacity(size as usize);
    entry.read_to_end(&mut v).map_err(|e| bad_data(what, e))?;
    Ok(v)
}

pub(super) fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// Pax records: `LEN KEY=VALUE\n`, where LEN counts the whole record, so values may hold
/// newlines (ACL texts do).
pub fn parse_pax(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>> {
    let bad = || Error::hostile("malformed pax extended header");
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && rest[0] != 0 {
        let sp = rest.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err(bad());
        }
        let kv = &rest[sp + 1..len - 1];
        let eq = kv.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let key = String::from_utf8(kv[..eq].to_vec()).map_err(|_| bad())?;
        out.push((key, kv[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

/// A pax time, "SECONDS[.FRACTION]", to (seconds, nanoseconds).
pub(super) fn pax_time(v: &[u8]) -> Option<(i64, i64)> {
    let v = std::str::from_utf8(v).ok()?;
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let nsecs = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    // Negative times with a fraction count back from the second.
    Some(if secs < 0 && nsecs > 0 {
        (secs - 1, 1_000_000_000 - nsecs)
    } else {
        (secs, nsecs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_values_may_hold_newlines() {
        let acl = "SCHILY.acl.default=user::rwx\ngroup::r-x\nother::r-x\n";
        let rec = format!("{} {acl}\n", acl.len() + 2 + 1 + 1);
        let rec = if rec.len() == rec.split(' ').next().unwrap().parse::<usize>().unwrap() {
            rec
        } else {
            format!("{} {acl}\n", acl.len() + 4)
        };
        let data = format!("{rec}20 path=./a/b/c.txt\n");
        let recs = parse_pax(data.as_bytes()).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].0, "SCHILY.acl.default");
        assert_eq!(recs[0].1, b"user::rwx\ngroup::r-x\nother::r-x\n");
        assert_eq!(recs[1], ("path".to_string(), b"./a/b/c.txt".to_vec()));
        assert!(parse_pax(b"99 path=x\n").is_err());
        assert!(parse_pax(b"5 a\n").is_err());
    }

    #[test]
    fn pax_times_keep_nanoseconds() {
        assert_eq!(
            pax_time(b"1700000000.268890854"),
            Some((1_700_000_000, 268_890_854))
        );
        assert_eq!(
            pax_time(b"1700000000.5"),
            Some((1_700_000_000, 500_000_000))
        );
        assert_eq!(pax_time(b"981173106"), Some((981_173_106, 0)));
        assert_eq!(pax_time(b"x"), None);
    }
}
