//! rlxc-config on a container: one key of its config.toml read or set. A set edits the
//! file's text (comments stay), is checked by the loader every start uses, and is
//! written whole with a rename, under the container's lock.

use super::Container;
use crate::config::{edit, parse_toml, read_text, write_atomic, ContainerConfig};
use crate::error::Result;

/// The check a container config's text must pass: the loader and its validation.
fn check(file: &std::path::Path) -> impl Fn(&str) -> Result<()> + '_ {
    move |text| {
        let cfg: ContainerConfig = parse_toml(file, text)?;
        cfg.validate(file)
    }
}

impl Container {
    /// The value of `key` in its config; None when not set (the default applies).
    pub fn config_get(&self, key: &str) -> Result<Option<String>> {
        self.must_exist()?;
        let file = self.config_path();
        let text = read_text(&file)?;
        let loads = check(&file);
        edit::lookup(&file, &text, key, &loads)
    }

    /// Every key its config sets.
    pub fn config_all(&self) -> Result<Vec<(String, String)>> {
        self.must_exist()?;
        let file = self.config_path();
        edit::listing(&file, &read_text(&file)?)
    }

    /// Set `key` to `value` (as typed on a command line). True when it runs: the change
    /// takes effect at its next start.
    pub fn config_set(&self, key: &str, value: &str) -> Result<bool> {
        self.must_exist()?;
        let _lock =
            crate::store::lock_name(&self.lxcpath, &self.name, "changing its configuration")?;
        let file = self.config_path();
        let old = read_text(&file)?;
        let text = edit::apply(&file, &old, key, value, &check(&file))?;
        write_atomic(&file, text.as_bytes(), 0o644)?;
        Ok(self.state().is_running())
    }
}
