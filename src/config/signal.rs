//! Signal names as configs write them (`signals.halt = "SIGRTMIN+3"`, LXC's
//! `lxc.signal.halt`). Pure and inside config because config imports no other module
//! of the crate (DESIGN.md, Layout); the monitor gets the number from `types::Signal`.

use nix::sys::signal::Signal;

/// The forms `parse_signal` accepts, for error messages.
pub const ACCEPTED_FORMS: &str =
    "a signal name or number such as SIGPWR, PWR, SIGRTMIN+3, RTMIN+3 or 30";

/// "SIGPWR", "PWR", "SIGRTMIN+3", "RTMIN+3" or a number (real-time signals have no
/// name in nix, so signals are plain numbers here).
pub fn parse_signal(s: &str) -> Option<i32> {
    let s = s.trim();
    let bare = s.strip_prefix("SIG").unwrap_or(s);
    if let Some(off) = bare.strip_prefix("RTMIN") {
        // Unsigned: "RTMIN+-3" would otherwise land on an ordinary signal.
        let n: u8 = if off.is_empty() {
            0
        } else {
            off.strip_prefix('+')?.parse().ok()?
        };
        let sig = libc::SIGRTMIN() + i32::from(n);
        return (sig <= libc::SIGRTMAX()).then_some(sig);
    }
    if let Ok(n) = s.parse::<i32>() {
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    format!("SIG{bare}")
        .parse::<Signal>()
        .ok()
        .map(|x| x as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("SIGPWR"), Some(libc::SIGPWR));
        assert_eq!(parse_signal("PWR"), Some(libc::SIGPWR));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("RTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("SIGRTMIN"), Some(libc::SIGRTMIN()));
        assert_eq!(parse_signal("9"), Some(9));
        assert_eq!(parse_signal("30"), Some(30));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("RTMIN+99"), None);
        assert_eq!(parse_signal("RTMIN+-3"), None);
        assert_eq!(parse_signal("0"), None);
        assert_eq!(parse_signal(""), None);
    }
}
