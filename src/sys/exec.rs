//! The last steps of a command rlxc starts inside a container (rlxc-execute's
//! application, rlxc-attach's command), in the forked process that becomes it: its
//! place towards the terminal, default signals, its ids and directory, the exec.

use std::ffi::{CStr, CString};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

/// How the command stands to the terminal on its fd 0.
#[derive(Debug, Clone, Copy)]
pub enum Session {
    /// Its own process group in the caller's session, the terminal's foreground one
    /// when `foreground` (rlxc-execute on the console: Ctrl-C reaches the command).
    /// Best effort, as a shell's job control: the command runs either way.
    Group { foreground: bool },
    /// A new session, with fd 0 its controlling terminal when `ctty` (rlxc-attach's
    /// pty). A failure is the command's.
    New { ctty: bool },
}

/// Ids the command takes for real, effective and saved.
#[derive(Debug, Clone, Copy)]
pub struct Ids<'a> {
    pub uid: u32,
    pub gid: u32,
    /// Its supplementary groups, instead of whatever the caller had.
    pub groups: &'a [u32],
}

/// What a command in a container runs as, where and how.
pub struct Exec<'a> {
    pub argv: &'a [CString],
    pub env: &'a [CString],
    pub session: Session,
    /// None: the caller's (root of the container).
    pub ids: Option<Ids<'a>>,
    /// None: the caller's working directory.
    pub cwd: Option<&'a CStr>,
    /// Enter `cwd` as the command's user, so a directory it may not enter is refused as
    /// it would be; else as root, before the ids change.
    pub cwd_as_user: bool,
}

/// Why the command did not start. Exit codes as a shell's: 127 it is not there, 126 it
/// (or what it needs first: its directory, its ids) is there but could not run.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cannot set up the command's terminal: {0}")]
    Terminal(std::io::Error),
    #[error("cannot give the command default signal handling: {}", .0.desc())]
    Signals(Errno),
    #[error("cannot run as uid {uid} gid {gid} in the container: {source}")]
    Ids {
        uid: u32,
        gid: u32,
        source: std::io::Error,
    },
    #[error("cannot enter {dir} in the container: {}", source.desc())]
    Cwd { dir: String, source: Errno },
    #[error("no command")]
    NoCommand,
    #[error("cannot execute {prog} in the container: {}", source.desc())]
    Exec { prog: String, source: Errno },
}

impl ExecError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::NoCommand => 127,
            // ENOENT: no such file (or its interpreter is missing, as a shell counts it).
            ExecError::Exec {
                source: Errno::ENOENT,
                ..
            } => 127,
            _ => 126,
        }
    }
}

impl Exec<'_> {
    /// Become the command; returns only why that failed (the caller reports it and exits
    /// with its code). Every signal's disposition is the default and none is blocked:
    /// nothing of rlxc's or its caller's handling reaches the container's command.
    pub fn exec(&self) -> ExecError {
        match self.prepare() {
            Ok(()) => self.exec_prepared(),
            Err(e) => e,
        }
    }

    fn prepare(&self) -> Result<(), ExecError> {
        enter_session(self.session).map_err(ExecError::Terminal)?;
        super::signals::reset_all().map_err(ExecError::Signals)?;
        SigSet::all().thread_unblock().map_err(ExecError::Signals)?;
        if !self.cwd_as_user {
            self.enter_cwd()?;
        }
        if let Some(ids) = self.ids {
            super::creds::become_ids(ids.uid, ids.gid, ids.groups).map_err(|source| {
                ExecError::Ids {
                    uid: ids.uid,
                    gid: ids.gid,
                    source,
                }
            })?;
        }
        if self.cwd_as_user {
            self.enter_cwd()?;
        }
        Ok(())
    }

    fn enter_cwd(&self) -> Result<(), ExecError> {
        let Some(dir) = self.cwd else { return Ok(()) };
        nix::unistd::chdir(dir).map_err(|source| ExecError::Cwd {
            dir: dir.to_string_lossy().into_owned(),
            source,
        })
    }

    fn exec_prepared(&self) -> ExecError {
        let Some(prog) = self.argv.first() else {
            return ExecError::NoCommand;
        };
        let path = resolve_in_path(prog, self.env);
        let source = match nix::unistd::execve(&path, self.argv, self.env) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        ExecError::Exec {
            prog: prog.to_string_lossy().into_owned(),
            source,
        }
    }
}

fn enter_session(session: Session) -> std::io::Result<()> {
    match session {
        Session::Group { foreground } => {
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            if foreground {
                // A background group until this is done: SIGTTOU would stop it.
                let mut ttou = SigSet::empty();
                ttou.add(Signal::SIGTTOU);
                let _ = ttou.thread_block();
                let _ = nix::unistd::tcsetpgrp(super::borrow_fd(0), nix::unistd::getpid());
            }
            Ok(())
        }
        Session::New { ctty } => {
            nix::unistd::setsid()?;
            if ctty {
                super::set_controlling_tty(super::borrow_fd(0))?;
            }
            Ok(())
        }
    }
}

/// Find `prog` in the PATH of the environment the command gets, inside the container
/// (execvpe would search the PATH of the process calling it, which may describe the host).
pub fn resolve_in_path(prog: &CString, env: &[CString]) -> CString {
    let bytes = prog.as_bytes();
    if bytes.contains(&b'/') {
        return prog.clone();
    }
    let path = env
        .iter()
        .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
        .unwrap_or(b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(|b| *b == b':').filter(|d| !d.is_empty()) {
        let mut cand = dir.to_vec();
        cand.push(b'/');
        cand.extend_from_slice(bytes);
        if let Ok(c) = CString::new(cand) {
            if nix::unistd::access(c.as_c_str(), nix::unistd::AccessFlags::X_OK).is_ok() {
                return c;
            }
        }
    }
    prog.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_there_is_127_there_but_not_runnable_is_126() {
        let exec = |source| ExecError::Exec {
            prog: "x".into(),
            source,
        };
        assert_eq!(exec(Errno::ENOENT).exit_code(), 127);
        assert_eq!(ExecError::NoCommand.exit_code(), 127);
        for e in [Errno::EACCES, Errno::ENOEXEC, Errno::ENOTDIR, Errno::ELOOP] {
            assert_eq!(exec(e).exit_code(), 126, "{e}");
        }
        let signals = ExecError::Signals(Errno::EINVAL);
        assert_eq!(signals.exit_code(), 126);
        assert!(!signals.to_string().contains("terminal"), "{signals}");
    }
}
