//! A bound on what a decompressing download may write: the image-size limit, the free
//! space of the cache's file system less a reserve, and Ctrl-C. xz turns a few MB into
//! gigabytes within one network read, so these are checked as the decompressor writes,
//! not between reads.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::config::format_size;
use crate::error::Error;

/// How often (in bytes written) the free space is asked again: a statvfs per 4 MiB
/// costs nothing next to writing them.
const SPACE_CHECK_EVERY: u64 = 4 << 20;
/// What rlxc keeps free on the cache file system: 5% of it, at least MIN_RESERVE (more
/// than is written between two checks, so a check always comes before ENOSPC) and at
/// most MAX_RESERVE.
const MIN_RESERVE: u64 = 16 << 20;
const MAX_RESERVE: u64 = 1 << 30;

/// What the output is, for messages.
#[derive(Debug, Clone)]
pub struct Budget {
    /// "rootfs.tar.xz of debian bookworm amd64 (default)"
    pub what: String,
    pub url: String,
    /// The most the output may grow to.
    pub limit: u64,
    /// What to do when the limit is hit.
    pub limit_fix: String,
    /// The directory whose file system holds the output (cachepath), for messages.
    pub fs_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Limit,
    Space {
        avail: u64,
        reserve: u64,
    },
    Interrupted,
    /// The output was abandoned (a retry starts over): nothing more may reach it.
    Discarded,
}

/// A file writer that refuses to go past its budget; `stopped` says why it refused.
pub struct Bounded {
    file: File,
    written: u64,
    limit: u64,
    next_space_check: u64,
    stop: Option<Stop>,
    interrupted: fn() -> bool,
}

impl Bounded {
    /// `interrupted` is `sys::interrupted` outside the unit tests.
    pub fn new(file: File, limit: u64, interrupted: fn() -> bool) -> Self {
        Bounded {
            file,
            written: 0,
            limit,
            next_space_check: 0,
            stop: None,
            interrupted,
        }
    }

    pub fn stopped(&self) -> Option<Stop> {
        self.stop
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn discard(&mut self) {
        self.stop = Some(Stop::Discarded);
    }

    fn check(&mut self, more: u64) -> Option<Stop> {
        if self.stop.is_some() {
            return self.stop;
        }
        if (self.interrupted)() {
            return Some(Stop::Interrupted);
        }
        let after = self.written.saturating_add(more);
        if after > self.limit {
            return Some(Stop::Limit);
        }
        if after >= self.next_space_check {
            self.next_space_check = after + SPACE_CHECK_EVERY;
            // Unknown free space (statvfs failed) is no reason to stop: ENOSPC still is.
            if let Ok(st) = nix::sys::statvfs::fstatvfs(&self.file) {
                // (c_ulong and fsblkcnt_t are u64 on the 64-bit hosts rlxc runs on.)
                let frsize = st.fragment_size();
                let avail = st.blocks_available().saturating_mul(frsize);
                let size = st.blocks().saturating_mul(frsize);
                let reserve = (size / 20).clamp(MIN_RESERVE, MAX_RESERVE);
                if avail < reserve.saturating_add(more) {
                    return Some(Stop::Space { avail, reserve });
                }
            }
        }
        None
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(stop) = self.check(buf.len() as u64) {
            self.stop = Some(stop);
            return Err(io::Error::other("the output's budget is spent"));
        }
        let n = self.file.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Budget {
    /// The error for a stop after `written` bytes.
    pub fn error(&self, stop: Stop, written: u64) -> Error {
        let Budget { what, url, .. } = self;
        match stop {
            Stop::Limit => Error::Limit {
                msg: format!(
                    "{what} from {url} expands to more than {}; stopped, nothing was cached",
                    format_size(self.limit)
                ),
                fix: self.limit_fix.clone(),
            },
            Stop::Space { avail, reserve } => Error::Limit {
                msg: format!(
                    "{what} from {url}: stopped after {} ({} free): going on would leave less \
                     than {} free on the file system of {}, the least rlxc leaves there; \
                     nothing was cached",
                    format_size(written),
                    format_size(avail),
                    format_size(reserve),
                    self.fs_dir.display(),
                ),
                fix: format!(
                    "free space in {}, or point `cachepath` in rlxc.toml at a larger file system",
                    self.fs_dir.display()
                ),
            },
            Stop::Interrupted | Stop::Discarded => Error::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zeros_xz(n: usize) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&vec![0u8; n]).unwrap();
        e.finish().unwrap()
    }

    /// Decompress `input` through a Bounded file with this limit and interrupt flag.
    fn run(input: &[u8], limit: u64, interrupted: fn() -> bool) -> (Option<Stop>, u64) {
        let dir = tempfile::tempdir().unwrap();
        let f = File::create(dir.path().join("out")).unwrap();
        let mut dec = xz2::write::XzDecoder::new(io::BufWriter::with_capacity(
            1 << 20,
            Bounded::new(f, limit, interrupted),
        ));
        let r = dec.write_all(input).and_then(|_| dec.flush());
        let b = dec.get_ref().get_ref();
        let (stop, written) = (b.stopped(), b.written());
        assert_eq!(r.is_err(), stop.is_some());
        (stop, written)
    }

    #[test]
    fn one_write_that_expands_past_the_limit_stops_at_it() {
        // 256 MiB of zeros in one ~40 KB write: the check runs inside it.
        let bomb = zeros_xz(256 << 20);
        let (stop, written) = run(&bomb, 8 << 20, || false);
        assert_eq!(stop, Some(Stop::Limit));
        assert!(written <= 8 << 20, "{written}");
        assert_eq!(run(&zeros_xz(1 << 20), 8 << 20, || false).0, None);
    }

    #[test]
    fn an_interrupt_stops_the_first_write() {
        let (stop, written) = run(&zeros_xz(256 << 20), u64::MAX, || true);
        assert_eq!(stop, Some(Stop::Interrupted));
        assert_eq!(written, 0);
    }

    #[test]
    fn errors_name_the_image_and_what_to_do() {
        let b = Budget {
            what: "rootfs.tar.xz of debian bookworm amd64 (default)".into(),
            url: "http://127.0.0.1:1/x/rootfs.tar.xz".into(),
            limit: 64 << 20,
            limit_fix: "raise it".into(),
            fs_dir: "/var/cache/rlxc".into(),
        };
        let e = b.error(Stop::Limit, 64 << 20);
        assert!(e.to_string().contains("debian bookworm") && e.to_string().contains("64 MiB"));
        assert_eq!(e.hint().as_deref(), Some("raise it"));
        let e = b.error(
            Stop::Space {
                avail: 10 << 20,
                reserve: 50 << 20,
            },
            3 << 30,
        );
        let m = e.to_string();
        assert!(m.contains("after 3 GiB (10 MiB free)"), "{m}");
        assert!(
            m.contains("less than 50 MiB free on the file system of /var/cache/rlxc"),
            "{m}"
        );
        assert!(e.hint().is_some_and(|h| h.contains("/var/cache/rlxc")));
    }
}
