//! `/etc/subuid` and `/etc/subgid`: `OWNER:START:COUNT` lines (OWNER a user name or
//! uid), as shadow's useradd and usermod keep them. Read bounded and line by line, a
//! line that is not such a triple skipped as shadow skips it; appended to (for
//! `rlxc-create --allocate`) under shadow's own lock file and by one rename.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::span::Span;
use crate::error::{Error, IoContext, Result};

/// The most of a file read: 10 000 users are 300 KB.
pub const MAX_FILE: u64 = 16 << 20;

/// One line's range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub owner: String,
    pub span: Span,
}

/// What one file lists.
#[derive(Debug, Clone)]
pub struct SubidFile {
    pub path: PathBuf,
    pub entries: Vec<Entry>,
}

/// Whether `owner` (a name or a uid) is root.
fn is_root(owner: &str) -> bool {
    owner == "root" || (owner.bytes().all(|b| b.is_ascii_digit()) && owner.parse() == Ok(0u32))
}

/// The entries of the text, in file order; comments, blank and malformed lines skipped.
pub fn parse(text: &str) -> Vec<Entry> {
    text.lines().filter_map(entry).collect()
}

fn entry(line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.starts_with('#') {
        return None;
    }
    let mut f = line.split(':');
    let (owner, start, count) = (f.next()?.trim(), f.next()?, f.next()?);
    let number = |t: &str| {
        let t = t.trim();
        // Digits only: no sign, no spaces inside; a start past u32 is no id at all.
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<u64>().ok())
            .flatten()
    };
    let (start, count) = (number(start)?, number(count)?);
    if f.next().is_some() || owner.is_empty() || count == 0 || start > u64::from(u32::MAX) {
        return None;
    }
    Some(Entry {
        owner: owner.to_string(),
        span: Span::new(start, count),
    })
}

impl SubidFile {
    /// The file's entries; a missing file lists none.
    pub fn read(path: &Path) -> Result<SubidFile> {
        let entries = match read_text(path)? {
            Some(text) => parse(&text),
            None => Vec::new(),
        };
        Ok(SubidFile {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// Root's ranges, in file order.
    pub fn root(&self) -> Vec<Span> {
        self.entries
            .iter()
            .filter(|e| is_root(&e.owner))
            .map(|e| e.span)
            .collect()
    }

    /// Every user's ranges.
    pub fn all(&self) -> Vec<Span> {
        self.entries.iter().map(|e| e.span).collect()
    }

    /// The ranges of users other than root.
    pub fn others(&self) -> Vec<Span> {
        self.entries
            .iter()
            .filter(|e| !is_root(&e.owner))
            .map(|e| e.span)
            .collect()
    }
}

/// The text of `path`, None if it does not exist: a regular file of at most `MAX_FILE`.
fn read_text(path: &Path) -> Result<Option<String>> {
    let f = match File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let md = f.metadata().ctx("read", path)?;
    let bad = |what: &str| Error::Ids {
        msg: format!("{}: {what}", path.display()),
        fix: "it must be a regular file of OWNER:START:COUNT lines (man 5 subuid)".into(),
    };
    if !md.is_file() {
        return Err(bad("not a regular file"));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .ctx("read", path)?;
    if buf.len() as u64 > MAX_FILE {
        return Err(bad(&format!("larger than {} MiB", MAX_FILE >> 20)));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// `line` (without its newline) appended to `path`, which is made if missing (mode
/// 0644): the whole new text written beside it with the old file's mode and owner, then
/// renamed over it, so a reader sees the old file or the new one. The caller holds the
/// file's `ShadowLock`.
pub fn append(path: &Path, line: &str) -> Result<()> {
    let old = read_text(path)?.unwrap_or_default();
    let (mode, uid, gid) = match std::fs::metadata(path) {
        Ok(md) => (md.mode() & 0o7777, md.uid(), md.gid()),
        Err(_) => (0o644, 0, 0),
    };
    let mut text = old;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.rlxc.{}", std::process::id()));
    let written = (|| {
        let mut f = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .ctx("create", &tmp)?;
        std::os::unix::fs::fchown(&f, Some(uid), Some(gid)).ctx("set the owner of", &tmp)?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
            .ctx("set the mode of", &tmp)?;
        f.write_all(text.as_bytes()).ctx("write", &tmp)?;
        f.sync_all().ctx("sync", &tmp)?;
        std::fs::rename(&tmp, path).ctx("rename into place", path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself, on disk.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Shadow's lock on one of its files: `FILE.lock` holding the holder's pid, made only if
/// absent, as useradd and usermod take it. A lock whose holder is dead is taken over.
pub struct ShadowLock {
    path: PathBuf,
}

impl ShadowLock {
    pub fn take(file: &Path) -> Result<ShadowLock> {
        let mut os = file.as_os_str().to_owned();
        os.push(".lock");
        let path = PathBuf::from(os);
        for _ in 0..2 {
            match File::options()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    let pid = std::process::id().to_string();
                    f.write_all(pid.as_bytes()).ctx("write", &path)?;
                    return Ok(ShadowLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    match holder.trim().parse::<i32>() {
                        Ok(pid) if pid > 0 && alive(pid) => {
                            return Err(Error::Ids {
                                msg: format!(
                                    "{} is locked by process {pid} (useradd, usermod, vipw \
                                     or another rlxc)",
                                    file.display()
                                ),
                                fix: "try again when it has finished".into(),
                            })
                        }
                        // Its holder died: shadow takes such a lock over too.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => return Err(Error::io("create", &path, e)),
            }
        }
        Err(Error::io(
            "lock",
            &path,
            std::io::Error::other("the lock file keeps coming back"),
        ))
    }
}

fn alive(pid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

impl Drop for ShadowLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_owner_start_count_and_nothing_else() {
        let text = "# shadow's file\n\nroot:100000:65536\n0:300000:10\n00:400000:1\n\
                    alice:165536:65536\n  bob : 231072 : 65536 \r\n\
                    root:1:2:3\nroot:-5:10\nroot:+5:10\nroot:5:0\nroot:x:1\n:5:5\n\
                    root:4294967296:1\nroot:99999999999999999999999:1\nroot\nroot:5\n\
                    root:4294967290:99999999999\nrooty:7:7\n#root:1:1\n";
        let e = parse(text);
        let got: Vec<(&str, String)> = e
            .iter()
            .map(|e| (e.owner.as_str(), e.span.to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("root", "100000-165535".to_string()),
                ("0", "300000-300009".into()),
                ("00", "400000-400000".into()),
                ("alice", "165536-231071".into()),
                ("bob", "231072-296607".into()),
                ("root", "4294967290-4294967294".into()),
                ("rooty", "7-13".into()),
            ]
        );
        let f = SubidFile {
            path: "/etc/subuid".into(),
            entries: e,
        };
        assert_eq!(f.root().len(), 4, "root, 0, 00 and the one cut at the top");
        assert_eq!(f.all().len(), 7);
        assert_eq!(f.others().len(), 3);
    }

    #[test]
    fn binary_and_huge_files_are_bounded() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("subuid");
        let mut junk: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
        junk.extend_from_slice(b"\nroot:1000000:65536\n\xff\xfe:1:1\n");
        std::fs::write(&p, &junk).unwrap();
        let f = SubidFile::read(&p).unwrap();
        assert_eq!(f.root(), [Span::new(1_000_000, 65536)]);

        let big = "alice:1:1\n".repeat((MAX_FILE / 10) as usize + 1);
        std::fs::write(&p, big).unwrap();
        let e = SubidFile::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("subuid") && e.contains("larger than 16 MiB"),
            "{e}"
        );

        let e = SubidFile::read(d.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let none = SubidFile::read(&d.path().join("missing")).unwrap();
        assert!(none.entries.is_empty());
    }

    #[test]
    fn append_keeps_mode_owner_and_text() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("subgid");
        std::fs::write(&p, "alice:100000:65536").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&p, Some(12345), Some(54321)).unwrap();
        {
            let _lock = ShadowLock::take(&p).unwrap();
            let e = ShadowLock::take(&p).err().unwrap().to_string();
            assert!(e.contains("locked by process"), "{e}");
            append(&p, "root:1000000:1000000000").unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            "alice:100000:65536\nroot:1000000:1000000000\n"
        );
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o640, 12345, 54321)
        );
        // The lock went with its guard; a dead holder's lock is taken over.
        let lock = d.path().join("subgid.lock");
        assert!(!lock.exists());
        std::fs::write(&lock, "999999999").unwrap();
        drop(ShadowLock::take(&p).unwrap());
        assert!(!lock.exists());
        // A missing file is made.
        let new = d.path().join("subuid");
        append(&new, "root:1:1").unwrap();
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "root:1:1\n");
        let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 2, "no temp file left");
    }
}
