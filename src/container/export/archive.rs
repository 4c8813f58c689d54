//! The export archive's format: one tar stream, zstd-compressed. Its first two members
//! are `manifest.toml` and `config.toml` (written here), the rest is GNU tar's archive of
//! the rootfs (`./…` members, with its own end-of-archive blocks). So the whole file is
//! one valid tar (`tar --zstd -tvf` lists it) and the rootfs part is exactly what the
//! confined unpacker already reads for images.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format this rlxc writes and reads.
pub const FORMAT: u32 = 1;
pub const MANIFEST: &str = "manifest.toml";
pub const CONFIG: &str = "config.toml";
/// No manifest is near this; a larger one is not an rlxc export.
const MAX_MANIFEST: u64 = 64 << 10;
const BLOCK: usize = 512;

/// What the archive says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The container's name when it was exported.
    pub name: String,
    /// The rlxc that wrote it.
    pub rlxc_version: String,
    /// The backing store the rootfs came from (`dir`, `btrfs`).
    pub backing_store: String,
}

/// One small member's header and data, padded to whole blocks.
pub fn write_member(out: &mut impl Write, name: &str, data: &[u8], mtime: u64) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_path(name)
        .map_err(|e| Error::Other(format!("cannot name archive member {name}: {e}")))?;
    h.set_size(data.len() as u64);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
    out.write_all(h.as_bytes())
        .and_then(|_| out.write_all(data))
        .and_then(|_| out.write_all(&vec![0; pad]))
        .map_err(|e| Error::Other(format!("cannot write archive member {name}: {e}")))
}

/// What an import learns before the rootfs: the manifest and the config's text.
#[derive(Debug)]
pub struct Head {
    pub manifest: Manifest,
    pub config: String,
}

/// Read the two leading members of an archive (`what` names it in errors), each
/// bounded, leaving `r` at the rootfs stream.
pub fn read_head(r: &mut impl Read, what: &str) -> Result<Head> {
    let manifest = read_member(r, what, MANIFEST, MAX_MANIFEST)?;
    let manifest = parse_manifest(&manifest, what)?;
    let config = read_member(r, what, CONFIG, crate::config::MAX_CONFIG_SIZE)?;
    Ok(Head { manifest, config })
}

fn not_export(what: &str, why: String) -> Error {
    Error::Usage(format!(
        "{what} is not an rlxc export archive ({why}); make one with rlxc-export -n NAME FILE"
    ))
}

/// The member named `name`, a regular file of at most `max` bytes, as UTF-8 text.
fn read_member(r: &mut impl Read, what: &str, name: &str, max: u64) -> Result<String> {
    let mut block = [0u8; BLOCK];
    read_exact(r, &mut block, what, name)?;
    let h = tar::Header::from_byte_slice(&block);
    if !checksum_ok(&block) {
        return Err(not_export(
            what,
            format!("no valid tar header where {name} should be"),
        ));
    }
    if h.path_bytes().as_ref() != name.as_bytes() || h.entry_type() != tar::EntryType::Regular {
        return Err(not_export(
            what,
            format!(
                "its member is {:?}, not the file {name}",
                String::from_utf8_lossy(&h.path_bytes())
            ),
        ));
    }
    let size = h
        .size()
        .map_err(|e| not_export(what, format!("{name}: bad size: {e}")))?;
    if size > max {
        return Err(Error::hostile(format!(
            "{what}: its {name} is {size} bytes, more than the {max} an rlxc export has"
        )));
    }
    let padded = (size as usize).div_ceil(BLOCK) * BLOCK;
    let mut data = vec![0u8; padded];
    read_exact(r, &mut data, what, name)?;
    data.truncate(size as usize);
    String::from_utf8(data).map_err(|_| not_export(what, format!("its {name} is not UTF-8 text")))
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], what: &str, name: &str) -> Result<()> {
    r.read_exact(buf).map_err(|e| Error::Image {
        what: format!("{what} (reading {name})"),
        source: e,
    })
}

/// The ustar checksum: the header's bytes summed with its checksum field as spaces.
fn checksum_ok(block: &[u8; BLOCK]) -> bool {
    let field = &block[148..156];
    let text = String::from_utf8_lossy(field);
    let Ok(stored) = u32::from_str_radix(text.trim_matches(|c: char| c == '\0' || c == ' '), 8)
    else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(*b)
            }
        })
        .sum();
    sum == stored
}

/// The manifest, its format checked before anything else so a newer archive is told
/// apart from a broken one.
fn parse_manifest(text: &str, what: &str) -> Result<Manifest> {
    let table: toml::Table = text
        .parse()
        .map_err(|e| not_export(what, format!("its {MANIFEST} is not TOML: {e}")))?;
    match table.get("format").and_then(toml::Value::as_integer) {
        Some(f) if f == i64::from(FORMAT) => {}
        Some(f) => {
            return Err(Error::Usage(format!(
                "{what} is an export of format {f}; this rlxc reads format {FORMAT}: \
                 import it with the rlxc that wrote it, or a newer one"
            )))
        }
        None => return Err(not_export(what, format!("its {MANIFEST} has no format"))),
    }
    let path = std::path::PathBuf::from(format!("{what}:{MANIFEST}"));
    crate::config::parse_toml(&path, text)
}

/// Ends `w` only after all of the stream is written, and tells whether its last 1024
/// bytes were zeros: GNU tar ends every archive with such blocks, so a stream without
/// them was cut short (at a member boundary, where the tar reader alone would not see it).
pub struct TailCheck<W> {
    pub inner: W,
    tail: Vec<u8>,
}

impl<W> TailCheck<W> {
    pub fn new(inner: W) -> Self {
        TailCheck {
            inner,
            tail: Vec::with_capacity(2 * BLOCK),
        }
    }

    pub fn ends_with_end_of_archive(&self) -> bool {
        self.tail.len() == 2 * BLOCK && self.tail.iter().all(|b| *b == 0)
    }
}

impl<W: Write> Write for TailCheck<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let keep = 2 * BLOCK;
        let written = &buf[..n];
        if written.len() >= keep {
            self.tail.clear();
            self.tail
                .extend_from_slice(&written[written.len() - keep..]);
        } else {
            self.tail.extend_from_slice(written);
            let excess = self.tail.len().saturating_sub(keep);
            self.tail.drain(..excess);
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_text(format: u32) -> String {
        format!(
            "format = {format}\nname = \"web1\"\nrlxc_version = \"0.1.0\"\nbacking_store = \"dir\"\n"
        )
    }

    fn head_bytes(manifest: &str, config: &str) -> Vec<u8> {
        let mut v = Vec::new();
        write_member(&mut v, MANIFEST, manifest.as_bytes(), 0).unwrap();
        write_member(&mut v, CONFIG, config.as_bytes(), 0).unwrap();
        v
    }

    #[test]
    fn the_head_reads_back_and_leaves_the_stream_at_the_rootfs() {
        let mut v = head_bytes(&manifest_text(FORMAT), "hostname = \"web1\"\n");
        v.extend_from_slice(b"ROOTFS");
        let mut r = &v[..];
        let head = read_head(&mut r, "a.tar.zst").unwrap();
        assert_eq!(head.manifest.name, "web1");
        assert_eq!(head.manifest.backing_store, "dir");
        assert_eq!(head.config, "hostname = \"web1\"\n");
        assert_eq!(r, b"ROOTFS");
    }

    #[test]
    fn a_plain_tar_a_newer_format_and_a_corrupt_header_are_told_apart() {
        let mut other = Vec::new();
        write_member(&mut other, "./etc/passwd", b"root", 0).unwrap();
        let e = read_head(&mut &other[..], "x").unwrap_err().to_string();
        assert!(
            e.contains("not an rlxc export") && e.contains("etc/passwd"),
            "{e}"
        );

        let newer = head_bytes(&manifest_text(FORMAT + 1), "");
        let e = read_head(&mut &newer[..], "x").unwrap_err().to_string();
        assert!(
            e.contains("format 2") && e.contains("reads format 1"),
            "{e}"
        );

        let mut corrupt = head_bytes(&manifest_text(FORMAT), "");
        corrupt[3] ^= 0x20;
        let e = read_head(&mut &corrupt[..], "x").unwrap_err().to_string();
        assert!(e.contains("no valid tar header"), "{e}");

        let cut = head_bytes(&manifest_text(FORMAT), "hostname = \"a\"\n");
        let e = read_head(&mut &cut[..1100], "x").unwrap_err().to_string();
        assert!(e.contains("reading config.toml"), "{e}");
    }

    #[test]
    fn an_oversized_member_is_refused_before_it_is_read() {
        let mut h = tar::Header::new_ustar();
        h.set_path(MANIFEST).unwrap();
        h.set_size(1 << 40);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        let e = read_head(&mut &h.as_bytes()[..], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn unknown_manifest_keys_are_errors() {
        let text = format!("{}extra = 1\n", manifest_text(FORMAT));
        let v = head_bytes(&text, "");
        let e = read_head(&mut &v[..], "x").unwrap_err().to_string();
        assert!(e.contains("extra"), "{e}");
    }

    #[test]
    fn the_tail_check_sees_the_end_of_archive_blocks() {
        let mut t = TailCheck::new(Vec::new());
        t.write_all(&[1u8; 3000]).unwrap();
        assert!(!t.ends_with_end_of_archive());
        for _ in 0..4 {
            t.write_all(&[0u8; 300]).unwrap();
        }
        assert!(t.ends_with_end_of_archive());
        t.write_all(&[0u8, 1]).unwrap();
        assert!(!t.ends_with_end_of_archive());
    }
}
