//! Into a running container: a command (rlxc-attach) or its console (rlxc-console,
//! rlxc-start in the foreground).

use super::Container;
use crate::attach::Options;
use crate::console::Ended;
use crate::error::Result;

impl Container {
    /// Run a command inside; its exit status.
    pub fn attach(&self, opts: &Options) -> Result<i32> {
        let pid = self.running_pid()?;
        self.must_not_be_frozen()?;
        crate::attach::run(pid, opts)
    }

    /// This terminal on the container's console until Ctrl-a q or the container stops.
    /// Only a live monitor has the console; an orphan needs another way out.
    /// `tty` 0 is /dev/console, N /dev/ttyN.
    pub fn console(&self, quiet: bool, tty: u32) -> Result<Ended> {
        self.must_exist()?;
        self.running_pid()?;
        crate::console::attach(&self.run_dir, &self.name, quiet, tty)
    }

    /// The console right after a start (the monitor was just heard from).
    pub fn console_now(&self, quiet: bool) -> Result<Ended> {
        crate::console::attach(&self.run_dir, &self.name, quiet, 0)
    }
}
