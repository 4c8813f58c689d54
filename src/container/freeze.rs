//! Freeze and thaw (rlxc-freeze, rlxc-unfreeze), and the freeze a step such as a
//! snapshot holds on a running container for its copy.

use super::{Container, State};
use crate::cgroup::{Cgroup, FreezeHold};
use crate::error::{Error, Result};
use crate::store;

/// A running container held still for a step: frozen by it (thawed when this goes) or
/// by someone before (left frozen).
pub(super) struct Quiesced {
    _hold: Option<FreezeHold>,
}

impl Container {
    /// Freeze every process of the running container; false when it was frozen already.
    pub fn freeze(&self) -> Result<bool> {
        let _lock = store::lock_name(&self.lxcpath, &self.name, "freezing this container")?;
        let cg = self.live_cgroup("frozen")?;
        if cg.frozen() {
            return Ok(false);
        }
        cg.freeze()?;
        self.announce(super::events::Change::Frozen, None);
        Ok(true)
    }

    /// Thaw a frozen container; false when it was not frozen.
    pub fn unfreeze(&self) -> Result<bool> {
        let _lock = store::lock_name(&self.lxcpath, &self.name, "thawing this container")?;
        let cg = self.live_cgroup("thawed")?;
        if !cg.frozen() {
            return Ok(false);
        }
        cg.thaw()?;
        self.announce(super::events::Change::Running, self.running_pid().ok());
        Ok(true)
    }

    /// Every process of it is frozen.
    pub fn is_frozen(&self) -> bool {
        self.cgroup().is_ok_and(|c| c.frozen())
    }

    /// The cgroup of a container that runs (or whose processes do, monitor or not).
    pub(super) fn live_cgroup(&self, done: &str) -> Result<Cgroup> {
        self.must_exist()?;
        if self.state() == State::Stopped {
            return Err(Error::Usage(format!(
                "{} is not running; only a running container can be {done}",
                self.name
            )));
        }
        self.cgroup()
    }

    /// This container's lock; if it runs, it is also frozen until the `Quiesced` goes,
    /// so that `what` (a snapshot) copies files nothing changes meanwhile: consistent as
    /// after a power cut. The error says why a freeze could not be had.
    pub(super) fn lock_quiesced(
        &self,
        doing: &str,
        what: &str,
    ) -> Result<(store::NameLock, Option<Quiesced>)> {
        let lock = store::lock_name(&self.lxcpath, &self.name, doing)?;
        if self.state() == State::Stopped {
            return Ok((lock, None));
        }
        let cg = self.cgroup()?;
        let hold = if cg.frozen() {
            None
        } else {
            Some(cg.hold_frozen().map_err(|e| Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "it is running, and {what} of a running container needs it frozen for \
                     the copy, which failed: {}; stop it first (rlxc-stop -n {})",
                    crate::error::flatten(&e),
                    self.name
                ),
            })?)
        };
        Ok((lock, Some(Quiesced { _hold: hold })))
    }

    /// Refused while frozen: a command run in it would hang until the thaw.
    pub(super) fn must_not_be_frozen(&self) -> Result<()> {
        if self.is_frozen() {
            return Err(Error::Busy {
                name: self.name.clone(),
                what: format!(
                    "it is frozen, so nothing can run in it; thaw it first \
                     (rlxc-unfreeze -n {})",
                    self.name
                ),
            });
        }
        Ok(())
    }
}

/// A snapshot's comment, saying when it was taken from a running container.
pub(super) fn noted(comment: &str, live: bool) -> String {
    const LIVE: &str = "(taken live: frozen for the copy, crash-consistent)";
    match (live, comment.is_empty()) {
        (false, _) => comment.to_string(),
        (true, true) => LIVE.to_string(),
        (true, false) => format!("{comment} {LIVE}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_live_snapshot_says_so_in_its_comment() {
        assert_eq!(super::noted("before upgrade", false), "before upgrade");
        let c = super::noted("before upgrade", true);
        assert!(c.starts_with("before upgrade (taken live"), "{c}");
        assert!(super::noted("", true).starts_with("(taken live"));
        assert_eq!(super::noted("", false), "");
    }
}
