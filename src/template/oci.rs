//! The oci template (LXC's `lxc-oci`, without skopeo and umoci): an image from a
//! registry or an OCI layout, pulled into the blob cache (`image::oci`), its layers
//! applied in order through the confined unpacker with whiteouts. An image whose rootfs
//! has an init boots as a system container; any other runs its Entrypoint + Cmd as an
//! application under rlxc's own init.

use std::path::Path;

use super::{Filled, Lower, Prepared, Target, Template};
use crate::config::{AppUser, ContainerConfig, ImageSource, Signal};
use crate::error::{Error, Result};
use crate::image::fetch::Progress;
use crate::image::oci::{self, Pulled, Reference};
use crate::image::{lower, unpack};
use crate::rootfs::Root;

/// What `-t oci -- …` was given (lxc-oci's names).
#[derive(Debug, Clone, Default)]
pub struct OciOptions {
    /// `-u docker://…` or `oci:PATH[:TAG]`.
    pub url: String,
    pub arch: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Talk http, not https, to the registry.
    pub plain_http: bool,
}

pub struct Oci {
    reference: Reference,
    opts: OciOptions,
    cachepath: std::path::PathBuf,
    max_image_size: u64,
    pulled: Option<Pulled>,
}

impl Oci {
    pub fn new(opts: OciOptions, cachepath: &std::path::Path, max_image_size: u64) -> Result<Self> {
        Ok(Oci {
            reference: Reference::parse(&opts.url, opts.plain_http)?,
            opts,
            cachepath: cachepath.to_path_buf(),
            max_image_size,
            pulled: None,
        })
    }

    fn pulled(&self) -> Result<&Pulled> {
        self.pulled
            .as_ref()
            .ok_or_else(|| Error::Other("the oci template was not prepared".into()))
    }
}

impl Template for Oci {
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared> {
        let creds = match (&self.opts.username, &self.opts.password) {
            (Some(u), Some(p)) => Some((u.clone(), p.clone())),
            (Some(u), None) => Some((u.clone(), String::new())),
            _ => None,
        };
        let pulled = oci::pull(
            &oci::PullRequest {
                reference: &self.reference,
                arch: self.opts.arch.as_deref(),
                creds,
                cachepath: &self.cachepath,
                max_image_size: self.max_image_size,
            },
            progress,
        )?;
        let (server, dist, release) = self.reference.names();
        progress.message(&format!(
            "{} {} for {}: {} layers, {} fetched",
            self.reference,
            pulled.digest,
            pulled.platform,
            pulled.layers.len(),
            crate::config::format_size(pulled.fetched)
        ));
        let rc = pulled.config.config.clone().unwrap_or_default();
        let prepared = Prepared {
            source: Some(ImageSource {
                server,
                dist,
                release,
                arch: oci::debian_arch(&pulled.platform),
                variant: "oci".into(),
                build: pulled.digest.clone(),
                exposed_ports: rc.exposed_ports.unwrap_or_default().into_keys().collect(),
            }),
            ..Default::default()
        };
        self.pulled = Some(pulled);
        Ok(prepared)
    }

    fn fill(&mut self, target: &Target, progress: &dyn Progress) -> Result<Filled> {
        let stats = apply_layers(&self.pulled()?.layers, target.root, progress)?;
        Ok(Filled {
            stats: Some(stats),
            lxc_config: None,
        })
    }

    /// The layer stack applied once under `CACHEPATH/lowers/oci/CHAINID`, while this
    /// create holds the blob store's shared lock (taken by the pull): a removal waits
    /// until the container that uses the lower exists, and then sees it.
    fn shared_lower(&mut self, cachepath: &Path, progress: &dyn Progress) -> Result<Option<Lower>> {
        let pulled = self.pulled()?;
        // An image without layers has no tree to share: each container gets its own.
        let Some(chain) = &pulled.chain_id else {
            return Ok(None);
        };
        let path = lower::oci_dir(cachepath, chain)?;
        let stats = lower::ensure(&path, progress, |root| {
            apply_layers(&pulled.layers, root, progress)
        })?;
        Ok(Some(Lower { path, stats }))
    }

    fn configure(&mut self, cfg: &mut ContainerConfig, root: &Root) -> Result<Vec<String>> {
        let rc = self.pulled()?.config.config.clone().unwrap_or_default();
        configure(cfg, root, &rc)
    }
}

/// The layers' tars applied in order on `root`, whiteouts and all.
fn apply_layers(
    layers: &[std::path::PathBuf],
    root: &Root,
    progress: &dyn Progress,
) -> Result<unpack::Stats> {
    let mut total = unpack::Stats::default();
    for (i, layer) in layers.iter().enumerate() {
        progress.message(&format!("applying layer {}/{}", i + 1, layers.len()));
        let s = unpack::unpack_layer(layer, root)?;
        total.entries += s.entries;
        total.bytes += s.bytes;
        total.warnings.extend(s.warnings);
    }
    Ok(total)
}

/// The image config's run settings in `cfg`; notes for the sysadmin.
pub fn configure(
    cfg: &mut ContainerConfig,
    root: &Root,
    rc: &oci::RunConfig,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for e in rc.env.iter().flatten() {
        if !e.contains('=') || e.contains('\0') || e.starts_with('=') {
            return Err(Error::hostile(format!(
                "the image config's Env entry {e:?} is not KEY=VALUE"
            )));
        }
        cfg.init.env.push(e.clone());
    }
    let stop: Option<Signal> = match &rc.stop_signal {
        Some(s) => Some(s.parse().map_err(|why: String| {
            Error::Other(format!("the image config's StopSignal: {why}"))
        })?),
        None => None,
    };
    let has_init = root
        .openat(b"sbin/init", nix::fcntl::OFlag::O_PATH, 0)
        .is_ok();
    if has_init {
        notes.push("the image has /sbin/init: a system container, booted by its init".into());
        if stop.is_some() {
            cfg.signals.halt = stop;
        }
    } else {
        let argv: Vec<String> = rc
            .entrypoint
            .iter()
            .flatten()
            .chain(rc.cmd.iter().flatten())
            .cloned()
            .collect();
        if argv.is_empty() {
            return Err(Error::Other(
                "the image has neither an init (/sbin/init) nor an Entrypoint or Cmd: \
                 nothing to run; set init.cmd with rlxc-config after a create with -f"
                    .into(),
            ));
        }
        if argv.iter().any(|a| a.contains('\0')) {
            return Err(Error::hostile(
                "the image's Entrypoint or Cmd holds a NUL byte",
            ));
        }
        notes.push(format!(
            "no /sbin/init in the image: an application container running {argv:?} under \
             rlxc's init"
        ));
        cfg.init.cmd = argv;
        cfg.init.app = true;
        cfg.init.cwd = rc.working_dir.clone().filter(|w| !w.is_empty());
        if let Some(u) = rc.user.as_deref().filter(|u| !u.is_empty()) {
            cfg.init.user = Some(resolve_user(root, u)?);
        }
        // Docker's default: SIGTERM, then a kill at the timeout.
        cfg.signals.halt = stop.or_else(|| "SIGTERM".parse().ok());
    }
    if let Some(ports) = &rc.exposed_ports {
        let p: Vec<&str> = ports.keys().map(String::as_str).collect();
        if !p.is_empty() {
            notes.push(format!(
                "the image exposes {}: reach it with [[publish]] in config.toml",
                p.join(", ")
            ));
        }
    }
    Ok(notes)
}

/// `USER[:GROUP]` (names or numbers) as the image's own passwd and group say.
fn resolve_user(root: &Root, spec: &str) -> Result<AppUser> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read_db(root, b"etc/passwd");
    // name:x:uid:gid:…
    let pw = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && (f[0] == u || f[2] == u));
    let uid = match (u.parse::<u32>(), &pw) {
        (Ok(n), _) => n,
        (Err(_), Some(f)) => f[2]
            .parse()
            .map_err(|_| bad_user(spec, "its passwd line"))?,
        (Err(_), None) => return Err(bad_user(spec, "no such user in the image's /etc/passwd")),
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read_db(root, b"etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad_user(spec, "no such group in the image's /etc/group"))?,
        },
        None => pw.and_then(|f| f[3].parse().ok()).unwrap_or(0),
    };
    Ok(AppUser { uid, gid })
}

fn bad_user(spec: &str, why: &str) -> Error {
    Error::Other(format!("the image config's User {spec:?}: {why}"))
}

/// A small file of the image, read confined; empty when missing.
fn read_db(root: &Root, rel: &[u8]) -> String {
    use std::io::Read;
    // O_NONBLOCK: a FIFO planted there must not hang the create.
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK;
    let Ok(fd) = root.openat(rel, flags, 0) else {
        return String::new();
    };
    let mut s = String::new();
    let _ = std::fs::File::from(fd).take(1 << 20).read_to_string(&mut s);
    s
}
