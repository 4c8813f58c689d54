//! The export archive's format: one tar stream, zstd-compressed. Its first two members
//! are `manifest.toml` and `config.toml` (written here), the rest is GNU tar's archive of
//! the rootfs (`./…` members, with its own end-of-archive blocks). So the whole file is
//! one valid tar (`tar --zstd -tvf` lists it) and the rootfs part is exactly what the
//! confined unpacker already reads for images.
//!
//! Format 2 (written with `--snapshots`) puts each snapshot the manifest lists between
//! the config and the rootfs: `snaps/NAME/config.toml`, `ts`, `comment`, then its tree as
//! GNU tar archives it, cut into members `snaps/NAME/rootfs.tar.000000`, `…001`, … of
//! `CHUNK` bytes, the first shorter one (maybe empty) its last: each member's size is
//! known before its header is written, and a reader finds the end of a tree without
//! parsing GNU tar's stream. (`cat snaps/NAME/rootfs.tar.*` of an extracted archive is
//! that tree's tar.)

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The format this rlxc writes without snapshots, and with them; it reads both.
pub const FORMAT: u32 = 1;
pub const FORMAT_SNAPSHOTS: u32 = 2;
pub const MANIFEST: &str = "manifest.toml";
pub const CONFIG: &str = "config.toml";
/// No manifest is near this; a larger one is not an rlxc export.
const MAX_MANIFEST: u64 = 64 << 10;
/// A snapshot's `ts`: a number of seconds.
const MAX_TS: u64 = 64;
const BLOCK: usize = 512;
/// The size of a snapshot tree's members but the last (a multiple of BLOCK).
pub const CHUNK: usize = 4 << 20;

/// What the archive says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    /// The container's name when it was exported.
    pub name: String,
    /// The rlxc that wrote it.
    pub rlxc_version: String,
    /// The backing store of the trees it holds (`dir`, `btrfs`: whole trees).
    pub backing_store: String,
    /// The snapshots that follow the config, in order (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<String>,
}

/// The path of member `file` of snapshot `snap`.
pub fn snap_member(snap: &str, file: &str) -> String {
    format!("snaps/{snap}/{file}")
}

fn chunk_name(snap: &str, index: u64) -> String {
    snap_member(snap, &format!("rootfs.tar.{index:06}"))
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
/// bounded, leaving `r` at the first snapshot or the rootfs stream.
pub fn read_head(r: &mut impl Read, what: &str) -> Result<Head> {
    let manifest = read_member(r, what, MANIFEST, MAX_MANIFEST)?;
    let manifest = parse_manifest(&manifest, what)?;
    let config = read_member(r, what, CONFIG, crate::config::MAX_CONFIG_SIZE)?;
    Ok(Head { manifest, config })
}

/// A snapshot's small members, as read.
#[derive(Debug)]
pub struct SnapHead {
    pub config: String,
    pub ts: i64,
    pub comment: String,
}

/// Read snapshot `snap`'s config, ts and comment (at most `max_comment` bytes), leaving
/// `r` at its tree's chunks.
pub fn read_snap_head(
    r: &mut impl Read,
    what: &str,
    snap: &str,
    max_comment: u64,
) -> Result<SnapHead> {
    let config = read_member(
        r,
        what,
        &snap_member(snap, CONFIG),
        crate::config::MAX_CONFIG_SIZE,
    )?;
    let ts_name = snap_member(snap, "ts");
    let ts = read_member(r, what, &ts_name, MAX_TS)?;
    let ts = ts.trim().parse().map_err(|_| {
        Error::hostile(format!(
            "{what}: its {ts_name} is not a number of seconds: {ts:?}"
        ))
    })?;
    let comment = read_member(r, what, &snap_member(snap, "comment"), max_comment)?;
    Ok(SnapHead {
        config,
        ts,
        comment,
    })
}

/// A snapshot tree's tar stream written as its chunk members; `finish` writes the last.
pub struct ChunkWriter<'a, W: Write> {
    out: &'a mut W,
    snap: String,
    mtime: u64,
    buf: Vec<u8>,
    index: u64,
}

impl<'a, W: Write> ChunkWriter<'a, W> {
    pub fn new(out: &'a mut W, snap: &str, mtime: u64) -> Self {
        ChunkWriter {
            out,
            snap: snap.to_string(),
            mtime,
            buf: Vec::with_capacity(CHUNK),
            index: 0,
        }
    }

    fn flush_chunk(&mut self) -> Result<()> {
        let name = chunk_name(&self.snap, self.index);
        write_member(self.out, &name, &self.buf, self.mtime)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    /// The last, short (maybe empty) chunk.
    pub fn finish(mut self) -> Result<()> {
        self.flush_chunk()
    }
}

impl<W: Write> Write for ChunkWriter<'_, W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush_chunk()
                .map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A snapshot tree's tar stream read back from its chunk members, each header checked
/// (the name, regular, at most CHUNK bytes); it ends after the first short chunk.
pub struct ChunkReader<'a, R: Read> {
    r: &'a mut R,
    what: String,
    snap: String,
    index: u64,
    /// Data bytes of the current member not read yet, and its padding after them.
    left: u64,
    pad: usize,
    last: bool,
}

impl<'a, R: Read> ChunkReader<'a, R> {
    pub fn new(r: &'a mut R, what: &str, snap: &str) -> Self {
        ChunkReader {
            r,
            what: what.to_string(),
            snap: snap.to_string(),
            index: 0,
            left: 0,
            pad: 0,
            last: false,
        }
    }
}

impl<R: Read> Read for ChunkReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.left > 0 {
                let want = buf.len().min(self.left as usize);
                let n = self.r.read(&mut buf[..want])?;
                if n == 0 && want > 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.left -= n as u64;
                return Ok(n);
            }
            if self.pad > 0 {
                let mut pad = [0u8; BLOCK];
                self.r.read_exact(&mut pad[..self.pad])?;
                self.pad = 0;
            }
            if self.last {
                return Ok(0);
            }
            let name = chunk_name(&self.snap, self.index);
            let size = read_header(self.r, &self.what, &name, CHUNK as u64)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            self.index += 1;
            self.left = size;
            self.pad = (BLOCK - size as usize % BLOCK) % BLOCK;
            self.last = size < CHUNK as u64;
        }
    }
}

fn not_export(what: &str, why: String) -> Error {
    Error::Usage(format!(
        "{what} is not an rlxc export archive ({why}); make one with rlxc-export -n NAME FILE"
    ))
}

/// The member named `name`, a regular file of at most `max` bytes, as UTF-8 text.
fn read_member(r: &mut impl Read, what: &str, name: &str, max: u64) -> Result<String> {
    let size = read_header(r, what, name, max)?;
    let padded = (size as usize).div_ceil(BLOCK) * BLOCK;
    let mut data = vec![0u8; padded];
    read_exact(r, &mut data, what, name)?;
    data.truncate(size as usize);
    String::from_utf8(data).map_err(|_| not_export(what, format!("its {name} is not UTF-8 text")))
}

/// The header of the member named `name`, a regular file of at most `max` bytes; its size.
fn read_header(r: &mut impl Read, what: &str, name: &str, max: u64) -> Result<u64> {
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
    Ok(size)
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
        Some(f) if f == i64::from(FORMAT) || f == i64::from(FORMAT_SNAPSHOTS) => {}
        Some(f) => {
            return Err(Error::Usage(format!(
                "{what} is an export of format {f}; this rlxc reads formats {FORMAT} and \
                 {FORMAT_SNAPSHOTS}: import it with the rlxc that wrote it, or a newer one"
            )))
        }
        None => return Err(not_export(what, format!("its {MANIFEST} has no format"))),
    }
    let path = std::path::PathBuf::from(format!("{what}:{MANIFEST}"));
    let m: Manifest = crate::config::parse_toml(&path, text)?;
    if m.format == FORMAT && !m.snapshots.is_empty() {
        return Err(not_export(
            what,
            format!("format {FORMAT} lists snapshots, which only format {FORMAT_SNAPSHOTS} holds"),
        ));
    }
    Ok(m)
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

        let newer = head_bytes(&manifest_text(FORMAT_SNAPSHOTS + 1), "");
        let e = read_head(&mut &newer[..], "x").unwrap_err().to_string();
        assert!(
            e.contains("format 3") && e.contains("reads formats 1 and 2"),
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

    /// A snapshot's members as the export writes them, `tree` its stream.
    fn snapshot_bytes(snap: &str, ts: &str, tree: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_member(&mut v, &snap_member(snap, CONFIG), b"hostname = \"a\"\n", 0).unwrap();
        write_member(&mut v, &snap_member(snap, "ts"), ts.as_bytes(), 0).unwrap();
        write_member(&mut v, &snap_member(snap, "comment"), b"before upgrade", 0).unwrap();
        let mut w = ChunkWriter::new(&mut v, snap, 0);
        w.write_all(tree).unwrap();
        w.finish().unwrap();
        v
    }

    #[test]
    fn snapshot_trees_read_back_exactly_whatever_their_size() {
        for len in [0, 1, 700, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 513] {
            let tree: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut v = snapshot_bytes("snap0", "1700000000", &tree);
            v.extend_from_slice(b"ROOTFS");
            let mut r = &v[..];
            let h = read_snap_head(&mut r, "a", "snap0", 4096).unwrap();
            assert_eq!(
                (h.ts, h.comment.as_str()),
                (1_700_000_000, "before upgrade")
            );
            assert_eq!(h.config, "hostname = \"a\"\n");
            let mut back = Vec::new();
            ChunkReader::new(&mut r, "a", "snap0")
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == tree, "{len} bytes came back as {}", back.len());
            assert_eq!(r, b"ROOTFS", "{len}: the reader stops at the tree's end");
        }
        // The whole archive stays one tar: its chunks are members.
        let v = snapshot_bytes("snap0", "1", &vec![7u8; CHUNK + 3]);
        let names: Vec<String> = tar::Archive::new(&v[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "snaps/snap0/config.toml",
                "snaps/snap0/ts",
                "snaps/snap0/comment",
                "snaps/snap0/rootfs.tar.000000",
                "snaps/snap0/rootfs.tar.000001"
            ]
        );
    }

    #[test]
    fn hostile_snapshot_members_are_refused() {
        let e = read_snap_head(
            &mut &snapshot_bytes("snap0", "soon", b"")[..],
            "a",
            "snap0",
            99,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ts is not a number"), "{e}");
        // Another snapshot's members where this one's should be.
        let v = snapshot_bytes("snap1", "1", b"");
        let e = read_snap_head(&mut &v[..], "a", "snap0", 99)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not the file snaps/snap0/config.toml"), "{e}");
        // A chunk larger than a chunk is.
        let mut v = Vec::new();
        let mut h = tar::Header::new_ustar();
        h.set_path("snaps/snap0/rootfs.tar.000000").unwrap();
        h.set_size(CHUNK as u64 + 512);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        v.extend_from_slice(h.as_bytes());
        let e = ChunkReader::new(&mut &v[..], "a", "snap0")
            .read_to_end(&mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than"), "{e}");
        // Chunks out of order.
        let mut v = Vec::new();
        write_member(&mut v, "snaps/snap0/rootfs.tar.000001", b"x", 0).unwrap();
        let e = ChunkReader::new(&mut &v[..], "a", "snap0")
            .read_to_end(&mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("rootfs.tar.000000"), "{e}");
        // Cut short inside a chunk.
        let v = snapshot_bytes("snap0", "1", &[5u8; 2000]);
        let cut = &v[..v.len() - 1000];
        let mut r = cut;
        read_snap_head(&mut r, "a", "snap0", 99).unwrap();
        assert!(ChunkReader::new(&mut r, "a", "snap0")
            .read_to_end(&mut Vec::new())
            .is_err());
        // Format 1 has no snapshots.
        let text = format!("{}snapshots = [\"snap0\"]\n", manifest_text(FORMAT));
        let e = read_head(&mut &head_bytes(&text, "")[..], "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("only format 2"), "{e}");
        let text = format!(
            "{}snapshots = [\"snap0\"]\n",
            manifest_text(FORMAT_SNAPSHOTS)
        );
        let head = read_head(&mut &head_bytes(&text, "")[..], "x").unwrap();
        assert_eq!(head.manifest.snapshots, ["snap0"]);
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
