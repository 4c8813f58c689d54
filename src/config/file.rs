//! Reading config files: the one place every config read goes through, so a path that
//! names a device, a FIFO or a huge file is refused instead of read without end. And
//! writing them atomically.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use serde::de::DeserializeOwned;

use super::size::format_size;
use crate::error::{Error, IoContext, Result};

/// Far above any real config (the shipped ones are a few KiB), far below trouble.
pub const MAX_CONFIG_SIZE: u64 = 1 << 20;

/// The text of a config file: a regular file of at most `MAX_CONFIG_SIZE` bytes.
pub fn read_text(file: &Path) -> Result<String> {
    // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it does nothing to
    // reads of a regular file. O_NOCTTY: a terminal named here never becomes ours.
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(file)
        .ctx("read", file)?;
    // fstat of the open descriptor: what is read is what was checked.
    let md = f.metadata().ctx("read", file)?;
    if !md.file_type().is_file() {
        return Err(Error::Config {
            file: file.to_path_buf(),
            msg: format!(
                "is {}, not a regular file; a config file must be a regular file",
                kind(&md.file_type())
            ),
        });
    }
    let too_big = || Error::Config {
        file: file.to_path_buf(),
        msg: format!(
            "is larger than {}, the limit for a config file",
            format_size(MAX_CONFIG_SIZE)
        ),
    };
    if md.len() > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    // The size can change after fstat: read one byte past the limit, never more.
    let mut buf = Vec::new();
    f.take(MAX_CONFIG_SIZE + 1)
        .read_to_end(&mut buf)
        .ctx("read", file)?;
    if buf.len() as u64 > MAX_CONFIG_SIZE {
        return Err(too_big());
    }
    String::from_utf8(buf).map_err(|e| Error::Config {
        file: file.to_path_buf(),
        msg: format!("is not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })
}

fn kind(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

/// Parse TOML into `T`, turning errors into "FILE: line N (`text`): KEY: message".
/// The key's whole path (`network[0].ipv4`) comes from serde_path_to_error: the line
/// alone does not say which `[[network]]` it is in. Config values' own errors start
/// with the quoted value (types.rs), so they read `KEY = "VALUE": why`.
pub fn parse_toml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T> {
    let parsed = toml::Deserializer::parse(text)
        .map_err(|e| (e, String::new()))
        .and_then(|de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                let key = match e.path().iter().next() {
                    Some(_) => e.path().to_string(),
                    None => String::new(),
                };
                (e.into_inner(), key)
            })
        });
    parsed.map_err(|(e, key)| {
        let line_info = e.span().map(|span| {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            format!("line {line_no} (`{line}`): ")
        });
        let msg = e.message().trim();
        let key_info = match (key.is_empty(), msg.starts_with('"')) {
            (true, _) => String::new(),
            (false, true) => format!("{key} = "),
            (false, false) => format!("{key}: "),
        };
        Error::Config {
            file: file.to_path_buf(),
            msg: format!("{}{key_info}{msg}", line_info.unwrap_or_default()),
        }
    })
}

/// Read (bounded, regular files only) and parse a TOML config file.
pub fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<T> {
    parse_toml(file, &read_text(file)?)
}

/// Write `data` to the new file `path`, synced, in a directory nothing else sees until
/// it is renamed into place (a container being made): there a temp file and a rename
/// of its own would only cost a journalled rename more. Synced before the directory's
/// rename, so a crash cannot publish an empty file.
pub fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_synced(path, data, mode, true)
}

/// `data` into the file `path`, made (`new`: it must not be there) or truncated, its
/// data synced.
fn write_synced(path: &Path, data: &[u8], mode: u32, new: bool) -> Result<()> {
    let f = write_file(path, data, mode, new)?;
    f.sync_data().ctx("sync", path)
}

/// Create (or, unless `new`, truncate) `path` with exactly `mode`, whatever the umask
/// (a file another user reads, such as dnsmasq's, must not come out 0600), and write
/// `data`.
fn write_file(path: &Path, data: &[u8], mode: u32, new: bool) -> Result<File> {
    let mut o = File::options();
    o.write(true).mode(mode);
    if new {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    let mut f = o.open(path).ctx("create", path)?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .ctx("set the mode of", path)?;
    f.write_all(data).ctx("write", path)?;
    Ok(f)
}

/// Write `data` to `path` via a temp file in the same directory and a rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    replace(path, data, mode, true)
}

/// `write_atomic` without the sync: for state that every run writes again and that
/// lives on a tmpfs (RUNPATH), where a sync only costs.
pub fn write_atomic_unsynced(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    replace(path, data, mode, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, sync: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A dot name: readers of the directory (dnsmasq among them) skip it meanwhile.
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let written = if sync {
        write_synced(&tmp, data, mode, false)
    } else {
        write_file(&tmp, data, mode, false).map(drop)
    };
    let res = written.and_then(|()| std::fs::rename(&tmp, path).ctx("rename into place", path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_makes_a_file_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.toml");
        write_new(&p, b"one", 0o644).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let e = write_new(&p, b"two", 0o644).unwrap_err();
        assert!(matches!(e, Error::Io { what: "create", .. }), "{e}");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
    }

    #[test]
    fn devices_directories_and_fifos_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for (p, what) in [
            (Path::new("/dev/zero"), "a character device"),
            (dir.path(), "a directory"),
            (fifo.as_path(), "a FIFO"),
        ] {
            let e = read_text(p).unwrap_err().to_string();
            assert!(e.contains(&p.display().to_string()), "{e}");
            assert!(
                e.contains(what) && e.contains("must be a regular file"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_hint_states_the_limit() {
        assert_eq!(format_size(MAX_CONFIG_SIZE), crate::error::CONFIG_LIMIT);
    }

    #[test]
    fn the_size_limit_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, vec![b'#'; MAX_CONFIG_SIZE as usize]).unwrap();
        assert_eq!(read_text(&f).unwrap().len() as u64, MAX_CONFIG_SIZE);
        std::fs::write(&f, vec![b'#'; MAX_CONFIG_SIZE as usize + 1]).unwrap();
        let e = read_text(&f).unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("1 MiB"), "{e}");
    }
}
