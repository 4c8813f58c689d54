//! The supervisor of a managed bridge's dnsmasq (`[rlxc net] BRIDGE`, started by
//! `dnsmasq::start`): it starts dnsmasq, restarts it when it dies, passes reloads on at
//! the pace `reloaded::Pacer` sets (gathering the reservations and names just before
//! each), and stops it on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::dnsmasq::{reloaded_next_to, Files};
use crate::ipc::Status;

impl Files {
    /// The files of the bridge whose dnsmasq writes `pidfile` (`BRIDGE.dnsmasq.pid`):
    /// how the supervisor, which is given that path, finds the rest.
    pub fn of_dnsmasq_pid(pidfile: &Path) -> Option<Files> {
        let name = pidfile.file_name()?.to_str()?;
        Some(Files {
            dir: pidfile.parent()?.to_path_buf(),
            bridge: name.strip_suffix(".dnsmasq.pid")?.to_string(),
        })
    }
}

/// Gather the reservations and names for dnsmasq (`names::gather`); how many
/// reservations there are. A failure is logged: dnsmasq keeps what it read last.
fn gather(files: Option<&Files>) -> usize {
    let Some(f) = files else { return 0 };
    super::names::gather(f).unwrap_or_else(|e| {
        eprintln!("cannot gather the reservations for dnsmasq: {e}");
        0
    })
}

/// `rlxc __netd SUPERVISOR_PID DNSMASQ_PID -- DNSMASQ ARGS…`: run dnsmasq, report its
/// start on stdout (`ipc::Status`) once it serves, restart it when it dies, stop it on
/// SIGTERM.
pub fn supervise(own_pidfile: &Path, dnsmasq_pidfile: &Path, argv: &[String]) -> i32 {
    let _ = nix::unistd::setsid();
    let Ok(mask) = crate::sys::block_daemon_signals() else {
        report(Status::Failed {
            reason: "cannot block signals".into(),
        });
        return 1;
    };
    let _ = std::fs::remove_file(dnsmasq_pidfile);
    let stamp = reloaded_next_to(dnsmasq_pidfile);
    let files = Files::of_dnsmasq_pid(dnsmasq_pidfile);
    let started = super::reloaded::now();
    let reservations = gather(files.as_ref());
    let mut child = match spawn_ready(argv, dnsmasq_pidfile) {
        Ok(c) => {
            super::reloaded::record(&stamp, started);
            c
        }
        Err(why) => {
            report(Status::Failed { reason: why });
            return 1;
        }
    };
    if std::fs::write(own_pidfile, format!("{}\n", std::process::id())).is_err() {
        let _ = child.kill();
        report(Status::Failed {
            reason: format!("cannot write {}", own_pidfile.display()),
        });
        return 1;
    }
    report(Status::Started {
        pid: std::process::id() as i32,
    });
    let mut child = Some(child);
    let mut backoff = Duration::from_secs(1);
    // When to start dnsmasq again after it died (and a restart failed, maybe).
    let mut restart_at: Option<Instant> = None;
    let mut pacer = super::reloaded::Pacer::default();
    let mut interval = super::reloaded::Pacer::interval(reservations);
    loop {
        let now = Instant::now();
        let wait = [
            pacer.due_in(now, interval),
            restart_at.map(|t| t.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min();
        if wait.is_none() {
            // It sleeps in sigwait for days: keep only what that needs resident.
            crate::sys::trim_idle();
        }
        match crate::sys::sigwait_for(&mask, wait) {
            Ok(None) => {}
            Ok(Some(Signal::SIGCHLD)) => {
                if let Some(c) = child.as_mut() {
                    if matches!(c.try_wait(), Ok(Some(_))) {
                        eprintln!("dnsmasq exited; restarting it in {}s", backoff.as_secs());
                        child = None;
                        restart_at = Some(Instant::now() + backoff);
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                    }
                }
            }
            Ok(Some(Signal::SIGHUP)) => pacer.pending = true,
            _ => {
                if let Some(mut c) = child {
                    let _ = crate::sys::kill_raw(c.id() as i32, libc::SIGTERM);
                    let _ = c.wait();
                }
                let _ = std::fs::remove_file(dnsmasq_pidfile);
                let _ = std::fs::remove_file(own_pidfile);
                let _ = std::fs::remove_file(&stamp);
                return 0;
            }
        }
        if restart_at.is_some_and(|t| Instant::now() >= t) {
            restart_at = None;
            let started = super::reloaded::now();
            interval = super::reloaded::Pacer::interval(gather(files.as_ref()));
            match spawn_ready(argv, dnsmasq_pidfile) {
                Ok(c) => {
                    super::reloaded::record(&stamp, started);
                    child = Some(c);
                    // It read every file as it started.
                    pacer.pending = false;
                }
                Err(why) => {
                    eprintln!(
                        "dnsmasq restart failed: {why}; trying again in {}s",
                        backoff.as_secs()
                    );
                    restart_at = Some(Instant::now() + backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
        // No dnsmasq: no pid to signal (it may be another process's by now).
        if let Some(c) = &child {
            if pacer.take(Instant::now(), interval) {
                // Taken before the gathering: a stamp at or after a waiter's time means
                // its reservation, written before that, was gathered.
                let sent = super::reloaded::now();
                let reservations = gather(files.as_ref());
                let _ = crate::sys::kill_raw(c.id() as i32, libc::SIGHUP);
                super::reloaded::record(&stamp, sent);
                interval = super::reloaded::Pacer::interval(reservations);
            }
        }
    }
}

/// The supervisor's status, for the rlxc that started it (which may be gone: that is
/// no reason to fail, so the error is dropped).
fn report(status: Status) {
    let _ = crate::ipc::write_msg(std::io::stdout().lock(), &status);
}

/// Start dnsmasq in the foreground; ready once it wrote its pid file (after binding its
/// sockets), failed if it exits first.
fn spawn_ready(argv: &[String], pidfile: &Path) -> std::result::Result<Child, String> {
    let (prog, rest) = argv.split_first().ok_or("no dnsmasq command")?;
    let mut cmd = Command::new(prog);
    crate::sys::exec_with_clean_sigmask(&mut cmd);
    let mut child = cmd
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {prog}: {e}"))?;
    let stderr = child.stderr.take();
    let t0 = Instant::now();
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            let mut msg = String::new();
            if let Some(mut e) = stderr {
                let _ = std::io::Read::read_to_string(&mut e, &mut msg);
            }
            let msg = msg.trim().replace('\n', " | ");
            return Err(format!("{msg} ({st})"));
        }
        let pid = std::fs::read_to_string(pidfile)
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        if pid == Some(child.id()) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            return Err("dnsmasq did not become ready within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // From now on its messages go to our stderr: the bridge's log file.
    if let Some(mut e) = stderr {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut e, &mut std::io::stderr());
        });
    }
    Ok(child)
}
