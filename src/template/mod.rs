//! Templates obtain a rootfs; everything after that is the same for all of them (see
//! `Container::create`: obtain → populate → publish). `download` is one template; the
//! others DESIGN.md names (local archives, LXC's template scripts, OCI) plug in here.

mod download;
mod local;

pub use download::Download;
pub use local::Local;

use crate::config::ImageSource;
use crate::error::Result;
use crate::image::fetch::Progress;
use crate::image::unpack;
use crate::rootfs::Root;

/// What a template knows once it has what the rootfs is made from, before anything of
/// the container exists: enough to refuse the create early.
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

/// An image's `excludes-user` patterns: LXC applies them only to unprivileged creates;
/// as root, device nodes stay.
fn excludes(excludes_user: &str) -> Result<Vec<String>> {
    if nix::unistd::geteuid().is_root() {
        Ok(Vec::new())
    } else {
        unpack::parse_excludes(excludes_user)
    }
}

pub trait Template {
    /// Fetch and check what the rootfs is made from.
    fn prepare(&mut self, progress: &dyn Progress) -> Result<Prepared>;
    /// Fill the empty rootfs (confined to it).
    fn fill(&self, root: &Root, progress: &dyn Progress) -> Result<unpack::Stats>;
}
