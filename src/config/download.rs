//! `[download]` in rlxc.toml: the image server and what an image may expand to.

use std::path::Path;

use serde::Deserialize;

use super::size::parse_size;
use crate::error::{Error, Result};

/// What an image may decompress to unless `max_image_size` says otherwise: several times
/// the largest real images (a few GiB), yet a bomb stops long before a large disk fills.
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 32 << 30;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DownloadSection {
    pub server: Option<String>,
    /// The most an image's rootfs may decompress to, e.g. "16G".
    pub max_image_size: Option<String>,
}

impl DownloadSection {
    /// `max_image_size` in bytes, or the default.
    pub fn max_image_size(&self, file: &Path) -> Result<u64> {
        let Some(s) = &self.max_image_size else {
            return Ok(DEFAULT_MAX_IMAGE_SIZE);
        };
        parse_size(s).filter(|n| *n > 0).ok_or_else(|| Error::Config {
            file: file.to_path_buf(),
            msg: format!("key `download.max_image_size` = {s:?}: expected a size like \"16G\" or \"800M\""),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max(v: Option<&str>) -> Result<u64> {
        let d = DownloadSection {
            server: None,
            max_image_size: v.map(String::from),
        };
        d.max_image_size(Path::new("/etc/rlxc/rlxc.toml"))
    }

    #[test]
    fn max_image_size_is_a_size_with_a_default() {
        assert_eq!(max(None).unwrap(), DEFAULT_MAX_IMAGE_SIZE);
        assert_eq!(max(Some("64M")).unwrap(), 64 << 20);
        for bad in ["0", "lots", "-1G"] {
            let e = max(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("/etc/rlxc/rlxc.toml"), "{e}");
            assert!(
                e.contains("download.max_image_size") && e.contains("16G"),
                "{e}"
            );
        }
    }
}
