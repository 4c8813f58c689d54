//! `[download]` in rlxc.toml: the image server and what an image may expand to.

use std::path::Path;

use serde::Deserialize;

use super::types::ByteSize;
use crate::error::{Error, Result};

/// What an image may decompress to unless `max_image_size` says otherwise: several times
/// the largest real images (a few GiB), yet a bomb stops long before a large disk fills.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 32 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DownloadSection {
    pub server: Option<String>,
    /// The most an image's rootfs may decompress to, e.g. "16G".
    pub max_image_size: Option<ByteSize>,
}

impl DownloadSection {
    /// `max_image_size` in bytes, or the default. The text is checked at load; zero is
    /// refused here, as no image fits in it.
    pub fn max_image_size(&self, file: &Path) -> Result<u64> {
        let Some(s) = &self.max_image_size else {
            return Ok(DEFAULT_MAX_IMAGE_SIZE);
        };
        match s.bytes() {
            0 => Err(Error::Config {
                file: file.to_path_buf(),
                msg: format!("key `download.max_image_size` = \"{s}\": expected a size like \"16G\" or \"800M\""),
            }),
            n => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Through a whole rlxc.toml: a bad text is refused at load, zero by max_image_size.
    fn max(v: Option<&str>) -> Result<u64> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rlxc.toml");
        let text = v.map_or(String::new(), |v| {
            format!("[download]\nmax_image_size = {v:?}\n")
        });
        std::fs::write(&f, text).unwrap();
        crate::config::SystemConfig::from_file(&f).map(|c| c.max_image_size)
    }

    #[test]
    fn max_image_size_is_a_size_with_a_default() {
        assert_eq!(max(None).unwrap(), DEFAULT_MAX_IMAGE_SIZE);
        assert_eq!(max(Some("64M")).unwrap(), 64 << 20);
        for (bad, expected) in [("0", "16G"), ("lots", "512M"), ("-1G", "512M")] {
            let e = max(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("rlxc.toml"), "{e}");
            assert!(
                e.contains(&format!("download.max_image_size` = {bad:?}"))
                    || e.contains(&format!("download.max_image_size = {bad:?}")),
                "{e}"
            );
            assert!(e.contains(expected), "{e}");
        }
    }
}
