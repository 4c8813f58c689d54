//! rlxc-checkconfig: what this host offers containers, and what would stop them
//! (container::host does the checking; this prints its report).

use super::Common;
use crate::container::host::{self, Check, Verdict};
use crate::error::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Check kernel limits for N containers (default: as many as the lxcpath holds;
    /// new ones made with the defaults).
    #[arg(long = "containers", value_name = "N")]
    containers: Option<u64>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let report = host::checkconfig(&sys, a.containers);
    for section in &report.sections {
        println!("--- {} ---", section.title);
        for c in &section.checks {
            println!("{}", line(c));
        }
    }
    match report.problems() {
        0 => Ok(0),
        n => {
            println!("\n{n} problem(s) found");
            Ok(1)
        }
    }
}

/// `what` in a column, then ok/MISSING and the detail (a fact: only the detail).
fn line(c: &Check) -> String {
    let (mark, detail) = match &c.verdict {
        Verdict::Ok(d) => (Some("ok"), d),
        Verdict::Missing(d) => (Some("MISSING"), d),
        Verdict::Info(d) => (None, d),
    };
    match (mark, detail.is_empty()) {
        (Some(m), true) => format!("{:<34} {m}", c.what),
        (Some(m), false) => format!("{:<34} {m}: {detail}", c.what),
        (None, _) => format!("{:<34} {detail}", c.what),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(what: &str, verdict: Verdict) -> Check {
        Check {
            what: what.into(),
            verdict,
        }
    }

    #[test]
    fn lines_keep_lxc_checkconfig_columns() {
        assert_eq!(
            line(&check("PID namespace", Verdict::Ok(String::new()))),
            "PID namespace                      ok"
        );
        assert_eq!(
            line(&check("Bridges", Verdict::Missing("modprobe".into()))),
            "Bridges                            MISSING: modprobe"
        );
        assert_eq!(
            line(&check("IPv4 forwarding", Verdict::Info("on".into()))),
            "IPv4 forwarding                    on"
        );
    }
}
