//! The download template: an image from an LXC image server, through the verified
//! cache, unpacked confined. What the sysadmin asked for (`DownloadOptions`) becomes a
//! `Plan` here, asking a `Chooser` for what is missing, so a front end only prompts.

use std::path::Path;

use super::{Filled, Lower, Prepared, Target, Template};
use crate::config::{ImageSource, SystemConfig};
use crate::error::{Error, Result};
use crate::image::arch;
use crate::image::cache::{Cache, Entry, Key};
use crate::image::download::{self, Request};
use crate::image::fetch::{Fetcher, Progress};
use crate::image::index::{self, Index, Query};
use crate::image::server::Server;
use crate::image::{lower, unpack};

/// The download template's options (LXC's names).
#[derive(Debug, Default, Clone)]
pub struct DownloadOptions {
    pub dist: Option<String>,
    pub release: Option<String>,
    pub arch: Option<String>,
    pub variant: Option<String>,
    pub server: Option<String>,
    pub flush_cache: bool,
    pub force_cache: bool,
}

/// Picks one of the server's choices when the options leave it open (a terminal's
/// menu). `default`: the one to offer first.
pub trait Chooser {
    fn choose(&self, what: &str, items: &[String], default: Option<&str>) -> Result<String>;
}

/// What will be downloaded: the request, and the index when it was read to choose.
pub struct Plan {
    req: Request,
    index: Option<Index>,
}

impl Plan {
    pub fn key(&self) -> &Key {
        &self.req.key
    }

    /// Said before the download: the image cannot run here without emulation.
    pub fn arch_warning(&self) -> Option<String> {
        let a = &self.req.key.arch;
        (!arch::is_compatible_with_host(a)).then(|| {
            format!(
                "warning: {a} containers cannot run on this {} host without emulation",
                arch::host()
            )
        })
    }
}

fn server(sys: &SystemConfig, o: &DownloadOptions) -> Result<Server> {
    Server::parse(o.server.as_deref().unwrap_or(&sys.download_server))
}

/// The image `o` names, asking `chooser` for the distribution, release and
/// architecture it leaves open.
pub fn plan(
    sys: &SystemConfig,
    o: &DownloadOptions,
    chooser: &dyn Chooser,
    progress: &dyn Progress,
) -> Result<Plan> {
    let server = server(sys, o)?;
    let host_arch = o
        .arch
        .as_deref()
        .map(arch::to_debian)
        .unwrap_or_else(arch::host);
    let variant = o.variant.clone().unwrap_or_else(|| "default".into());
    let (key, index) = match (&o.dist, &o.release) {
        (Some(d), Some(r)) => (download::key(d, r, &host_arch, &variant), None),
        _ if o.force_cache => return Err(Error::Usage("--force-cache needs -d and -r".into())),
        _ => {
            let idx = download::fetch_index(&Fetcher::new(&server)?, &server, progress)?;
            let key = pick(&idx, o, &host_arch, &variant, chooser)?;
            (key, Some(idx))
        }
    };
    Ok(Plan {
        req: Request {
            server,
            key,
            flush_cache: o.flush_cache,
            force_cache: o.force_cache,
            max_image_size: sys.max_image_size,
        },
        index,
    })
}

fn pick(
    idx: &Index,
    o: &DownloadOptions,
    host_arch: &str,
    variant: &str,
    chooser: &dyn Chooser,
) -> Result<Key> {
    let ask = |what: &str, items: Vec<String>, default: Option<&str>| {
        let mut v = items;
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err(Error::NoImage(format!(
                "the server offers no {} for that choice",
                what.to_lowercase()
            )));
        }
        chooser.choose(what, &v, default)
    };
    let dist = match &o.dist {
        Some(d) => d.clone(),
        None => ask(
            "Distribution",
            idx.entries.iter().map(|e| e.dist.clone()).collect(),
            None,
        )?,
    };
    let q = |release: Option<String>| Query {
        dist: Some(dist.clone()),
        release,
        ..Default::default()
    };
    let release = match &o.release {
        Some(r) => r.clone(),
        None => ask(
            "Release",
            idx.filter(&q(None)).map(|e| e.release.clone()).collect(),
            None,
        )?,
    };
    let arch = match &o.arch {
        Some(_) => host_arch.to_string(),
        None => ask(
            "Architecture",
            idx.filter(&q(Some(release.clone())))
                .map(|e| e.arch.clone())
                .collect(),
            Some(host_arch),
        )?,
    };
    Ok(download::key(&dist, &release, &arch, variant))
}

/// What the server has that matches the options (`--list`), sorted; none is an error
/// that says what it does have.
pub fn list(
    sys: &SystemConfig,
    o: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<Vec<index::Entry>> {
    let server = server(sys, o)?;
    let idx = download::fetch_index(&Fetcher::new(&server)?, &server, progress)?;
    let q = Query {
        dist: o.dist.clone(),
        release: o.release.clone(),
        arch: o.arch.as_deref().map(arch::to_debian),
        variant: o.variant.clone(),
    };
    let mut rows: Vec<index::Entry> = idx.filter(&q).cloned().collect();
    if rows.is_empty() {
        let mut msg = format!("{server} has no image matching the filter");
        if q.dist.is_some() {
            msg += &format!("\n{}", idx.explain_miss(&q));
        }
        return Err(Error::NoImage(msg));
    }
    rows.sort_by(|a, b| {
        (&a.dist, &a.release, &a.arch, &a.variant).cmp(&(&b.dist, &b.release, &b.arch, &b.variant))
    });
    Ok(rows)
}

pub struct Download {
    req: Request,
    cache: Cache,
    index: Option<Index>,
    image: Option<Entry>,
}

impl Download {
    pub fn new(plan: Plan, cache: Cache) -> Self {
        Download {
            req: plan.req,
            cache,
            index: plan.index,
            image: None,
        }
    }
}

impl Template for Download {
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        let image = download::obtain(&self.req, &self.cache, self.index.take(), progress)?;
        let key = &self.req.key;
        let prepared = Prepared {
            source: Some(ImageSource {
                server: image.server.clone(),
                dist: key.dist.clone(),
                release: key.release.clone(),
                arch: key.arch.clone(),
                variant: key.variant.clone(),
                exposed_ports: Vec::new(),
                build: image.build.clone(),
            }),
            lxc_config: image.meta.config.clone(),
            substitute: image.meta.templates.clone(),
            create_message: image.meta.create_message.clone(),
        };
        self.image = Some(image);
        Ok(prepared)
    }

    fn fill(&mut self, target: &Target, progress: &dyn Progress) -> Result<Filled> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| Error::Other("the download template was not prepared".into()))?;
        let excludes = super::excludes(&image.meta.excludes_user)?;
        progress.message(&format!("unpacking {} build {}", self.req.key, image.build));
        let stats = unpack::unpack_file(&image.rootfs_tar(), target.root, &excludes)?;
        Ok(Filled {
            stats: Some(stats),
            lxc_config: None,
        })
    }

    /// The build unpacked once under `CACHEPATH/lowers/`, while this create holds the
    /// cache entry's shared lock.
    fn shared_lower(&mut self, cachepath: &Path, progress: &dyn Progress) -> Result<Option<Lower>> {
        let image = self
            .image
            .as_ref()
            .ok_or_else(|| Error::Other("the download template was not prepared".into()))?;
        let excludes = super::excludes(&image.meta.excludes_user)?;
        let path = lower::dir(cachepath, &self.req.key, &image.build)?;
        let stats = lower::ensure_unpacked(&path, &image.rootfs_tar(), &excludes, progress)?;
        Ok(Some(Lower { path, stats }))
    }
}
