//! Archives as sysadmins keep them: xz, gzip, zstd or a plain tar, told apart by their
//! first bytes (not their names), each concatenated stream read to the end.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, IoContext, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xz,
    Gzip,
    Zstd,
    Plain,
}

impl Format {
    pub fn sniff(head: &[u8]) -> Format {
        if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Format::Xz
        } else if head.starts_with(&[0x1f, 0x8b]) {
            Format::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Format::Zstd
        } else {
            Format::Plain
        }
    }
}

/// The regular file `path`, opened for reading (a FIFO, device or directory is refused).
pub fn open_plain(path: &Path) -> Result<File> {
    // O_NONBLOCK: a FIFO named here must not hang the open (regular files ignore it).
    let f = {
        use std::os::unix::fs::OpenOptionsExt;
        File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .ctx("open", path)?
    };
    let md = f.metadata().ctx("inspect", path)?;
    if !md.is_file() {
        return Err(Error::Usage(format!(
            "{} is not a regular file: name an archive (tar, .tar.xz, .tar.gz, .tar.zst)",
            path.display()
        )));
    }
    Ok(f)
}

/// The decompressed contents of the regular file `path`.
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    let f = open_plain(path)?;
    let mut r = BufReader::with_capacity(1 << 20, f);
    let format = Format::sniff(r.fill_buf().ctx("read", path)?);
    Ok(match format {
        Format::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(r)),
        Format::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Format::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .map_err(|e| Error::io("start decompressing", path, e))?,
        ),
        Format::Plain => Box::new(r),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_format_reads_back_what_went_in() {
        let data = b"hello tar".repeat(1000);
        let d = tempfile::tempdir().unwrap();
        let mut xz = xz2::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data).unwrap();
        let zst = zstd::stream::encode_all(&data[..], 1).unwrap();
        for (name, bytes, fmt) in [
            ("a.xz", xz.finish().unwrap(), Format::Xz),
            ("a.gz", gz.finish().unwrap(), Format::Gzip),
            ("a.zst", zst, Format::Zstd),
            ("a.tar", data.clone(), Format::Plain),
        ] {
            let p = d.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(Format::sniff(&bytes), fmt, "{name}");
            let mut out = Vec::new();
            open(&p).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{name}");
        }
        let e = open(d.path()).err().unwrap().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}
