//! The supervisor of a managed bridge's dnsmasq (`[rlxc net] BRIDGE`, started by
//! `dnsmasq::start`): it starts dnsmasq, restarts it when it dies, passes reloads on at
//! the pace `reloaded::Pacer` sets (gathering the reservations and names just before
//! each), and stops it on SIGTERM.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::dnsmasq::{reloaded_next_to, Files};
use crate::error::Result;
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

/// Gather the reservations and names for dnsmasq (`gather_all`); how many
/// reservations there are. None when that failed (logged): dnsmasq reads what was
/// gathered last, and no stamp may then say a waiter's reservation was read.
fn gather(files: Option<&Files>) -> Option<usize> {
    match gather_all(files?) {
        Ok(n) => Some(n),
        Err(e) => {
            eprintln!("cannot gather the reservations for dnsmasq: {e}");
            None
        }
    }
}

/// Record that dnsmasq reads, as of `t`, what was gathered (when it was).
fn record_if(gathered: Option<usize>, stamp: &Path, t: u64) {
    if gathered.is_some() {
        super::reloaded::record(stamp, t);
    }
}

/// Gather each directory's lines into the one file dnsmasq reads for it, just before
/// dnsmasq is started or signalled; the number of reservations. Why one file: dnsmasq
/// parsed two directories of a thousand small files each in about 15 ms, and the same
/// lines from two files in 2 (2026-12-07), on the one thread that also answers DHCP; the
/// supervisor's reading runs beside it. What remains of a reload at a thousand, 20 to 30
/// ms, is dnsmasq rechecking every lease against the reservations and names, which no
/// form of input avoids (`--dhcp-hostsdir` did it for each file it read).
pub fn gather_all(f: &Files) -> Result<usize> {
    let n = gather_dir(&f.dhcp_dir(), &f.dhcp_file())?;
    gather_dir(&f.hosts_dir(), &f.hosts_file())?;
    Ok(n)
}

/// One directory's lines into the one file dnsmasq reads for it; how many lines.
fn gather_dir(dir: &Path, into: &Path) -> Result<usize> {
    let entries = super::names::read_entries(dir)?;
    let mut text = String::with_capacity(entries.len() * 48);
    for (_, line) in &entries {
        text.push_str(line);
        text.push('\n');
    }
    crate::config::write_atomic_unsynced(into, text.as_bytes(), 0o644)?;
    Ok(entries.len())
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
    let gathered = gather(files.as_ref());
    let mut child = match spawn_ready(argv, dnsmasq_pidfile) {
        Ok(c) => {
            record_if(gathered, &stamp, started);
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
    let mut interval = super::reloaded::Pacer::interval(gathered.unwrap_or(0));
    loop {
        let now = Instant::now();
        let wait = next_wake(&pacer, interval, child.is_some(), restart_at, now);
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
            let gathered = gather(files.as_ref());
            interval = super::reloaded::Pacer::interval(gathered.unwrap_or(0));
            match spawn_ready(argv, dnsmasq_pidfile) {
                Ok(c) => {
                    record_if(gathered, &stamp, started);
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
                let gathered = gather(files.as_ref());
                let _ = crate::sys::kill_raw(c.id() as i32, libc::SIGHUP);
                record_if(gathered, &stamp, sent);
                interval = super::reloaded::Pacer::interval(gathered.unwrap_or(0));
            }
        }
    }
}

/// How long the supervisor may sleep: until the pending reload is due, if there is a
/// dnsmasq to pass it to (without one it would be due at once, and the loop would spin
/// until the restart), or until the restart; None: until a signal.
fn next_wake(
    pacer: &super::reloaded::Pacer,
    interval: Duration,
    dnsmasq_runs: bool,
    restart_at: Option<Instant>,
    now: Instant,
) -> Option<Duration> {
    [
        pacer.due_in(now, interval).filter(|_| dnsmasq_runs),
        restart_at.map(|t| t.saturating_duration_since(now)),
    ]
    .into_iter()
    .flatten()
    .min()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dnsmasq::tests::files;
    use crate::net::names::{release, reserve};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn gather_puts_every_line_in_one_file_for_dnsmasq_and_counts_reservations() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        // Before any container: empty files, so dnsmasq has something to read.
        assert_eq!(gather_all(&f).unwrap(), 0);
        assert_eq!(std::fs::read_to_string(f.dhcp_file()).unwrap(), "");
        reserve(
            &f,
            "web.k1",
            "00:16:3E:00:00:01",
            "10.0.3.7".parse().ok(),
            "web",
        )
        .unwrap();
        reserve(&f, "dyn.k2", "00:16:3e:00:00:02", None, "dyn").unwrap();
        // A temporary file of a write in progress, and a file no rlxc wrote.
        std::fs::write(f.dhcp_dir().join(".tmp.x"), "half").unwrap();
        std::fs::write(f.hosts_dir().join("big"), "x".repeat(10_000)).unwrap();
        assert_eq!(gather_all(&f).unwrap(), 2);
        assert_eq!(
            std::fs::read_to_string(f.dhcp_file()).unwrap(),
            "00:16:3e:00:00:02,dyn\n00:16:3e:00:00:01,10.0.3.7,web\n"
        );
        // A file no rlxc wrote costs only itself: too long, two lines, not text.
        std::fs::write(f.hosts_dir().join("two"), "10.0.3.9 a\n10.0.3.9 b\n").unwrap();
        std::fs::write(f.hosts_dir().join("bin"), b"\xff\xfe").unwrap();
        std::fs::create_dir(f.hosts_dir().join("dir")).unwrap();
        nix::unistd::mkfifo(&f.hosts_dir().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(gather_all(&f).unwrap(), 2);
        let hosts = std::fs::read_to_string(f.hosts_file()).unwrap();
        assert_eq!(hosts, "10.0.3.7 web\n");
        let mode = std::fs::metadata(f.dhcp_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "dnsmasq reads it as its own user");
        release(&f, "web.k1").unwrap();
        assert_eq!(gather_all(&f).unwrap(), 1);
        assert!(!std::fs::read_to_string(f.hosts_file())
            .unwrap()
            .contains("web"));
    }

    #[test]
    fn a_failed_gather_stamps_nothing_so_no_waiter_passes_on_it() {
        let d = tempfile::tempdir().unwrap();
        let f = files(d.path());
        reserve(
            &f,
            "web.k1",
            "00:16:3e:00:00:01",
            "10.0.3.7".parse().ok(),
            "web",
        )
        .unwrap();
        // What dnsmasq reads cannot be replaced (a directory is in its place).
        std::fs::create_dir(f.dhcp_file()).unwrap();
        let gathered = gather(Some(&f));
        assert_eq!(gathered, None);
        record_if(gathered, &f.reloaded(), 42);
        assert!(!f.reloaded().exists());
        std::fs::remove_dir(f.dhcp_file()).unwrap();
        let gathered = gather(Some(&f));
        assert_eq!(gathered, Some(1));
        record_if(gathered, &f.reloaded(), 42);
        assert_eq!(std::fs::read_to_string(f.reloaded()).unwrap().trim(), "42");
    }

    #[test]
    fn with_dnsmasq_down_a_pending_reload_waits_for_the_restart_not_at_once() {
        let now = Instant::now();
        let iv = Duration::from_millis(300);
        let mut pacer = crate::net::reloaded::Pacer::default();
        pacer.pending = true;
        let restart = Some(now + Duration::from_secs(4));
        assert_eq!(
            next_wake(&pacer, iv, false, restart, now),
            Some(Duration::from_secs(4))
        );
        assert_eq!(next_wake(&pacer, iv, false, None, now), None);
        // With dnsmasq running, the reload is due at once.
        assert_eq!(
            next_wake(&pacer, iv, true, restart, now),
            Some(Duration::ZERO)
        );
    }
}
