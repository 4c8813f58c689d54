//! rlxc-execute's init: rlxc's own code stays the container's PID 1 (as lxc-init, or
//! Docker's --init) instead of exec'ing an init from the rootfs, which an application
//! image may not have and which rlxc's dynamically linked binary could not be inside a
//! rootfs without its libraries. It forks the command, passes on the signals it gets
//! (a halt's SIGPWR as SIGTERM), reaps every orphan the command leaves, and once the
//! command is gone kills what is left and exits with the command's status (128 + N for
//! signal N), which the monitor hands to rlxc-execute. It runs from sealed copies of
//! rlxc and its libraries (`runtime::sealed`), never from the host's files.

use std::ffi::{CStr, CString};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::sys;

/// Signals passed on to the command.
const FORWARDED: [Signal; 8] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPWR,
    Signal::SIGWINCH,
];

/// Become the init of `argv` (with `env`), run as `app` says; on the console, the
/// command takes its foreground (so Ctrl-C reaches it). Never returns.
pub(super) fn run(argv: &[CString], env: &[CString], app: &super::AppSpec) -> ! {
    let code = match serve(argv, env, app) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rlxc-execute: error: {e}");
            126
        }
    };
    sys::exit_child(code)
}

/// The signals rlxc-execute and its init pass on to the command.
pub fn forwarded() -> SigSet {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask
}

fn serve(argv: &[CString], env: &[CString], app: &super::AppSpec) -> std::io::Result<i32> {
    let tty = matches!(app.stdio, super::AppStdio::Console);
    let cwd = app
        .cwd
        .as_deref()
        .map(CString::new)
        .transpose()
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the working directory contains a NUL byte",
            )
        })?;
    let mut mask = forwarded();
    mask.add(Signal::SIGCHLD);
    // The image's StopSignal, which a stop sends, reaches the command too.
    let stop = app.stop.and_then(|s| Signal::try_from(s).ok());
    let mut caught = FORWARDED.to_vec();
    if let Some(s) = stop.filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
        mask.add(s);
        caught.push(s);
    }
    sys::signals::deliverable(&caught)?;
    mask.thread_block()?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC)?;
    let command = match sys::fork()? {
        sys::Forked::Child => exec_command(argv, env, cwd.as_deref(), tty, app),
        sys::Forked::Parent(pid) => pid,
    };
    let mut status = None;
    while status.is_none() {
        let Some(info) = sfd.read_signal()? else {
            continue;
        };
        let sig = info.ssi_signo as i32;
        if sig == libc::SIGCHLD {
            status = reap(command);
        } else {
            // A halt's SIGPWR is the image's StopSignal (Docker's SIGTERM by default).
            let sig = if sig == libc::SIGPWR {
                app.stop
                    .filter(|s| *s != libc::SIGPWR)
                    .unwrap_or(libc::SIGTERM)
            } else {
                sig
            };
            let _ = sys::kill_raw(command.as_raw(), sig);
        }
    }
    // The command is gone: so is everything it left running (as when an init dies).
    let _ = sys::kill_raw(-1, libc::SIGKILL);
    while !matches!(
        waitpid(Pid::from_raw(-1), None),
        Err(nix::errno::Errno::ECHILD)
    ) {}
    Ok(status.unwrap_or(0))
}

/// Reap every child that has ended; the command's exit code if it was among them.
fn reap(command: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == command => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == command => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// In the forked command: its own process group (the console's foreground one on a
/// terminal), its directory and ids (supplementary groups: its group only), then exec.
fn exec_command(
    argv: &[CString],
    env: &[CString],
    cwd: Option<&CStr>,
    tty: bool,
    app: &super::AppSpec,
) -> ! {
    let e = sys::exec::Exec {
        argv,
        env,
        session: sys::exec::Session::Group { foreground: tty },
        ids: app.user.as_ref().map(|u| sys::exec::Ids {
            uid: u.uid,
            gid: u.gid,
            groups: std::slice::from_ref(&u.gid),
        }),
        cwd,
        cwd_as_user: false,
    }
    .exec();
    eprintln!("rlxc-execute: error: {e}");
    sys::exit_child(e.exit_code())
}
