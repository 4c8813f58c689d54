//! Templates obtain a rootfs; everything after that is the same for all of them (see
//! `Container::create`: obtain → populate → publish). `download` and `local` are built
//! in; every other template is an executable speaking LXC's template protocol
//! (`script.rs`), found by `resolve.rs`.

pub mod download;
mod local;
mod local_cache;
mod oci;
mod resolve;
mod script;

pub use download::{Chooser, Download, DownloadOptions, Plan};
pub use local::Local;
pub use oci::{Oci, OciOptions};
pub use resolve::{available, resolve, search_dirs, Available, Resolved, LXC_TEMPLATES};
pub use script::{relocate, Script};

use std::path::Path;

use crate::config::{ContainerConfig, ImageSource};
use crate::error::Result;
use crate::image::fetch::Progress;
use crate::image::unpack;
use crate::rootfs::Root;

/// What a template knows once it has what the rootfs is made from, before anything of
/// the container exists: enough to refuse the create early.
#[derive(Default)]
pub struct Prepared {
    /// Where the rootfs came from, recorded in the container's config.
    pub source: Option<ImageSource>,
    /// LXC config lines that come with it (an image's `config`), to be translated.
    pub lxc_config: String,
    /// Files inside the rootfs whose LXC_* placeholders are substituted.
    pub substitute: Vec<String>,
    /// A message for the sysadmin after the create.
    pub create_message: Option<String>,
}

/// The container being built, as a template fills it.
pub struct Target<'a> {
    pub name: &'a str,
    /// The container's directory while it is built (`LXCPATH/.NAME.creating`).
    pub dir: &'a Path,
    /// Its (empty) root file system, and a confined handle on it.
    pub rootfs: &'a Path,
    pub root: &'a Root,
}

/// What filling the rootfs gave.
#[derive(Default)]
pub struct Filled {
    /// Files and bytes written, when the template counted them (an unpack does).
    pub stats: Option<unpack::Stats>,
    /// LXC config lines the template wrote (a script's `config`), to be translated
    /// after the fill, where an image's come before it.
    pub lxc_config: Option<LxcConfig>,
}

/// LXC config text and the file it was read from, for errors.
pub struct LxcConfig {
    pub text: String,
    pub file: std::path::PathBuf,
}

/// An image's `excludes-user` patterns: LXC applies them only to unprivileged creates;
/// as root, device nodes stay.
fn excludes(excludes_user: &str) -> Result<Vec<String>> {
    if nix::unistd::geteuid().is_root() {
        Ok(Vec::new())
    } else {
        unpack::parse_excludes(excludes_user)
    }
}

/// A tree shared by `-B overlay` containers, read-only.
pub struct Lower {
    pub path: std::path::PathBuf,
    /// What unpacking it did, when this create made it.
    pub stats: Option<unpack::Stats>,
}

pub trait Template {
    /// Fetch and check what the rootfs is made from.
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared>;
    /// Fill the empty rootfs of `target`.
    fn fill(&mut self, target: &Target, progress: &dyn Progress) -> Result<Filled>;
    /// What a `-B overlay` container is layered on instead of a fill: the prepared
    /// image made once under `cachepath` and shared. None: this template makes a tree
    /// per container, so it has nothing to share.
    fn shared_lower(
        &mut self,
        _cachepath: &Path,
        _progress: &dyn Progress,
    ) -> Result<Option<Lower>> {
        Ok(None)
    }
    /// Settings the image brings that depend on the filled tree (an OCI image: system
    /// or application container, its command, user and environment), after the fill
    /// and the image's LXC lines; notes for the sysadmin.
    fn configure(&mut self, _cfg: &mut ContainerConfig, _root: &Root) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}
