//! Taking an entry's lock for removal, and naming who holds it when it is busy: the
//! kernel lists every flock in /proc/locks by device and inode, with the taker's pid.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, IoContext, Result};

const POLL: Duration = Duration::from_millis(100);

/// The lock could not be had in time; `holder` says by whom.
pub struct Busy {
    pub holder: String,
}

/// Open (or create) the lock file at `path`.
fn open(path: &Path) -> Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .ctx("open lock", path)
}

/// The exclusive lock at `path`, waiting up to `wait` for readers to let go.
/// `on_wait` is called once, with the holder, when the lock is not free at once.
pub fn exclusive(
    path: &Path,
    wait: Duration,
    on_wait: &mut dyn FnMut(&str),
) -> Result<Result<Flock<File>, Busy>> {
    let deadline = Instant::now() + wait;
    let mut file = open(path)?;
    let mut waited = false;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(Ok(lock)),
            Err((f, Errno::EWOULDBLOCK)) => file = f,
            Err((_, e)) => return Err(e).ctx("lock", path),
        }
        if Instant::now() >= deadline {
            return Ok(Err(Busy {
                holder: holder(path),
            }));
        }
        if !waited {
            on_wait(&holder(path));
            waited = true;
        }
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// Who holds the lock file at `path`: "pid N (its command line)" for each holder, or
/// "a create" when the kernel does not say.
pub fn holder(path: &Path) -> String {
    let pids = std::fs::metadata(path)
        .ok()
        .zip(std::fs::read_to_string("/proc/locks").ok())
        .map(|(m, locks)| holders(&locks, m.dev(), m.ino()))
        .unwrap_or_default();
    if pids.is_empty() {
        return "a create".into();
    }
    pids.iter()
        .map(|&pid| match command_line(pid) {
            Some(cmd) => format!("pid {pid} ({cmd})"),
            None => format!("pid {pid}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Pids holding (not waiting for) a flock on the inode `ino` of device `dev`, from the
/// text of /proc/locks: `1: FLOCK  ADVISORY  READ  1234 08:01:5678 0 EOF`, the device
/// as hex `major:minor`; waiters' lines have a `->` after the number.
pub fn holders(locks: &str, dev: u64, ino: u64) -> Vec<i32> {
    let want = format!(
        "{:02x}:{:02x}:{ino}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    let mut pids: Vec<i32> = locks
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(1) != Some(&"FLOCK") || f.get(5) != Some(&want.as_str()) {
                return None;
            }
            f.get(4)?.parse().ok()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// A process's command line, arguments joined by spaces, at most 80 characters.
fn command_line(pid: i32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let text: String = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    if text.is_empty() {
        return None;
    }
    Some(match text.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holders_are_found_by_device_and_inode_and_waiters_are_not_holders() {
        let dev = nix::sys::stat::makedev(0xfd, 1);
        let locks = "1: FLOCK  ADVISORY  READ  4242 fd:01:1234 0 EOF\n\
                     1: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1234 0 EOF\n\
                     2: FLOCK  ADVISORY  READ  4343 fd:01:1234 0 EOF\n\
                     3: POSIX  ADVISORY  WRITE 777 fd:01:1234 0 EOF\n\
                     4: FLOCK  ADVISORY  WRITE 888 fd:01:12345 0 EOF\n\
                     5: FLOCK  ADVISORY  WRITE 999 08:01:1234 0 EOF\n";
        assert_eq!(holders(locks, dev, 1234), [4242, 4343]);
        assert!(holders(locks, dev, 1).is_empty());
    }

    #[test]
    fn a_shared_lock_held_here_is_found_and_blocks_the_exclusive_one() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join(".default.lock");
        let reader = Flock::lock(open(&path).unwrap(), FlockArg::LockShared)
            .map_err(|(_, e)| e)
            .unwrap();
        let me = std::process::id().to_string();
        assert!(
            holder(&path).contains(&format!("pid {me}")),
            "{}",
            holder(&path)
        );
        let mut told = Vec::new();
        let got = exclusive(&path, Duration::from_millis(250), &mut |h| {
            told.push(h.to_string())
        })
        .unwrap();
        let Err(busy) = got else {
            panic!("the exclusive lock was had while a reader held it")
        };
        assert!(busy.holder.contains(&me), "{}", busy.holder);
        assert_eq!(told.len(), 1, "the wait is announced once: {told:?}");
        drop(reader);
        let got = exclusive(&path, Duration::ZERO, &mut |_| panic!("no wait")).unwrap();
        assert!(got.is_ok());
    }
}
