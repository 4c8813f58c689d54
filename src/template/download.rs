//! The download template: an image from an LXC image server, through the verified
//! cache, unpacked confined.

use super::{Prepared, Template};
use crate::config::ImageSource;
use crate::error::{Error, Result};
use crate::image::cache::Cache;
use crate::image::cache::Entry;
use crate::image::download::{self, Request};
use crate::image::fetch::Progress;
use crate::image::index::Index;
use crate::image::unpack;
use crate::rootfs::Root;

pub struct Download<'a> {
    req: &'a Request,
    cache: Cache,
    index: Option<Index>,
    image: Option<Entry>,
}

impl<'a> Download<'a> {
    /// `index`: the server's index when the caller already fetched it (an interactive
    /// pick), else it is fetched here.
    pub fn new(req: &'a Request, cache: Cache, index: Option<Index>) -> Self {
        Download {
            req,
            cache,
            index,
            image: None,
        }
    }
}

impl Template for Download<'_> {
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        let image = download::obtain(self.req, &self.cache, self.index.take(), progress)?;
        let key = &self.req.key;
        let prepared = Prepared {
            source: Some(ImageSource {
                server: image.server.clone(),
                dist: key.dist.clone(),
                release: key.release.clone(),
                arch: key.arch.clone(),
                variant: key.variant.clone(),
                build: image.build.clone(),
            }),
            lxc_config: image.meta.config.clone(),
            substitute: image.meta.templates.clone(),
            create_message: image.meta.create_message.clone(),
        };
        self.image = Some(image);
        Ok(prepared)
    }

    fn fill(&self, root: &Root, progress: &dyn Progress) -> Result<unpack::Stats> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| Error::Other("the download template was not prepared".into()))?;
        let excludes = super::excludes(&image.meta.excludes_user)?;
        progress.message(&format!("unpacking {} build {}", self.req.key, image.build));
        unpack::unpack_file(&image.rootfs_tar(), root, &excludes)
    }
}
