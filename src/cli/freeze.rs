//! rlxc-freeze and rlxc-unfreeze: pause every process of a running container, and let
//! them run again.

use super::Named;
use crate::container::Container;
use crate::error::Result;

/// Freeze (`freeze`) or thaw the container.
pub fn run(a: Named, freeze: bool) -> Result<i32> {
    let c = Container::new(&a.common.system()?, &a.name)?;
    let changed = if freeze { c.freeze()? } else { c.unfreeze()? };
    let msg = match (freeze, changed) {
        (true, true) => format!("Froze {}", c.name),
        (true, false) => format!("{} is frozen already", c.name),
        (false, true) => format!("Thawed {}", c.name),
        (false, false) => format!("{} is not frozen", c.name),
    };
    if !a.common.quiet {
        eprintln!("{msg}");
    }
    Ok(0)
}
