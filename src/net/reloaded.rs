//! When dnsmasq was last told to read the reservations: a stamp the supervisor writes
//! after each SIGHUP it sends (and each dnsmasq it starts), which a start waits for
//! before its container's DHCP client can ask.
//!
//! Why a start waits: dnsmasq reads reservations only at start and on SIGHUP, paced by
//! the supervisor. Read one file at a time as they appeared (`--dhcp-hostsdir`), each
//! read cost dnsmasq about 35 ms at a thousand containers (it rechecks every lease and
//! rewrites the lease file per file): 26 to 36 s of its CPU over a thousand starts,
//! while its DHCP socket overflowed and clients waited 20 s to ask again. Paced, a burst
//! costs one read per interval. But a client that asks before its reservation is read
//! is offered another address, so the start holds its container until dnsmasq has been
//! signalled after the reservation was written. dnsmasq handles its signal pipe before
//! its DHCP socket in each turn of its loop, so that signal is handled before the first
//! DHCP packet of the container.
//!
//! The stamp is CLOCK_MONOTONIC in nanoseconds, taken before the signal is sent: a
//! stamp at or after the waiter's own time means a signal sent after its write.

use std::path::Path;
use std::time::{Duration, Instant};

/// Now, on the clock every process of the host shares.
pub fn now() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// Record that dnsmasq was signalled (or started) at `t`.
pub fn record(path: &Path, t: u64) {
    // Atomic: a waiter never reads half a number. Losing it only makes waiters wait
    // for the next one.
    let _ = crate::config::write_atomic_unsynced(path, format!("{t}\n").as_bytes(), 0o644);
}

fn read(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Wait until the stamp at `path` is at or after `since`, polling; false after `limit`.
pub fn wait(path: &Path, since: u64, limit: Duration) -> bool {
    let t0 = Instant::now();
    let mut step = Duration::from_millis(2);
    loop {
        if read(path).is_some_and(|t| t >= since) {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(20));
    }
}

/// When the supervisor passes a reload on to dnsmasq. A reload re-reads the gathered
/// reservations and names (`supervisor::gather_all`) and rechecks every lease against
/// them: 25 to 30 ms at a thousand containers, nearly all of it the recheck (read from
/// a directory per container, the files cost another 13 ms). dnsmasq reading each new
/// names file as it appears (`--hostsdir`) did that recheck for each file, about 12 ms there, so a thousand
/// starts kept it busy for 20 s (with the reservations) and left DHCP clients
/// unanswered. Paced, a burst of starts costs one reload per interval; a start on a
/// quiet bridge is passed on at once. Reservations are read the same way, each start
/// waiting for the reload after its own (the module's doc says why).
#[derive(Debug, Default)]
pub struct Pacer {
    last: Option<Instant>,
    pub pending: bool,
}

impl Pacer {
    /// Between two reloads: 100 ms, plus 0.2 ms for each reservation (300 ms at a
    /// thousand), so reloads take at most about a fifth of dnsmasq's time.
    pub fn interval(entries: usize) -> Duration {
        Duration::from_micros(100_000 + 200 * entries as u64).min(Duration::from_secs(1))
    }

    /// How long until the pending reload is due; None when none is pending.
    pub fn due_in(&self, now: Instant, interval: Duration) -> Option<Duration> {
        if !self.pending {
            return None;
        }
        Some(match self.last {
            Some(t) => (t + interval).saturating_duration_since(now),
            None => Duration::ZERO,
        })
    }

    /// Whether to reload now; if so, it counts as done.
    pub fn take(&mut self, now: Instant, interval: Duration) -> bool {
        if self.due_in(now, interval) != Some(Duration::ZERO) {
            return false;
        }
        self.pending = false;
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_after_the_write_ends_the_wait_and_an_older_one_does_not() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("br.dnsmasq.reloaded");
        let before = now();
        record(&p, before);
        let since = now();
        assert!(since > before);
        // Only the older stamp: the wait runs out.
        assert!(!wait(&p, since, Duration::from_millis(30)));
        let q = p.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            record(&q, now());
        });
        assert!(wait(&p, since, Duration::from_secs(5)));
        writer.join().unwrap();
        // No stamp at all (no supervisor wrote one yet): not passed.
        assert!(!wait(&d.path().join("none"), 0, Duration::from_millis(5)));
    }

    #[test]
    fn reloads_are_passed_on_at_once_when_quiet_and_paced_in_a_burst() {
        let iv = Pacer::interval(1000);
        assert_eq!(iv, Duration::from_millis(300));
        assert_eq!(Pacer::interval(1_000_000), Duration::from_secs(1));
        let t0 = Instant::now();
        let mut p = Pacer::default();
        // Nothing asked: nothing due, nothing done.
        assert_eq!(p.due_in(t0, iv), None);
        assert!(!p.take(t0, iv));
        // The first request goes at once.
        p.pending = true;
        assert_eq!(p.due_in(t0, iv), Some(Duration::ZERO));
        assert!(p.take(t0, iv));
        // Requests within the interval wait for its end, and make one reload.
        p.pending = true;
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(p.due_in(t1, iv), Some(Duration::from_millis(200)));
        assert!(!p.take(t1, iv));
        p.pending = true;
        let t2 = t0 + iv;
        assert!(p.take(t2, iv));
        assert_eq!(p.due_in(t2, iv), None);
        // After a quiet interval, the next goes at once again.
        p.pending = true;
        assert!(p.take(t2 + iv + Duration::from_millis(1), iv));
    }
}
