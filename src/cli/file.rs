//! rlxc-file: files into and out of a container (`docker cp`, `incus file`).

use std::path::PathBuf;

use super::Common;
use crate::container::{Container, CopyReport, PullOptions, PushOptions};
use crate::error::{Error, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand, Debug)]
enum Cmd {
    /// Copy a host file or directory (-r) into a container: push SRC NAME:/PATH.
    Push(Push),
    /// Copy a file or directory (-r) of a container to the host: pull NAME:/PATH DEST.
    Pull(Pull),
}

#[derive(clap::Args, Debug)]
struct Push {
    /// The host file (or directory, with -r).
    source: PathBuf,
    /// NAME:/PATH; an existing directory (or a trailing '/') receives SOURCE under its name.
    target: String,
    /// Copy a directory and everything in it.
    #[arg(short = 'r', long = "recursive")]
    recursive: bool,
    /// Create the missing parent directories inside the container (0755, root's).
    #[arg(short = 'p', long = "create-dirs")]
    parents: bool,
    /// Owner of what is pushed, as a number inside the container.
    #[arg(long, default_value_t = 0)]
    uid: u32,
    /// Group of what is pushed, as a number inside the container.
    #[arg(long, default_value_t = 0)]
    gid: u32,
    /// Mode of pushed files, in octal (default: the source's permission bits).
    #[arg(long, value_parser = parse_mode)]
    mode: Option<u32>,
    #[command(flatten)]
    common: Common,
}

#[derive(clap::Args, Debug)]
struct Pull {
    /// NAME:/PATH inside the container.
    source: String,
    /// Where on the host; an existing directory receives it under its own name.
    dest: PathBuf,
    /// Copy a directory and everything in it.
    #[arg(short = 'r', long = "recursive")]
    recursive: bool,
    #[command(flatten)]
    common: Common,
}

fn parse_mode(s: &str) -> std::result::Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o7777 => Ok(m),
        _ => Err(format!(
            "{s:?} is not an octal mode such as 0644 (at most 7777)"
        )),
    }
}

/// `NAME:/PATH` → (NAME, /PATH).
fn split_target(arg: &str) -> Result<(&str, &str)> {
    match arg.split_once(':') {
        Some((name, path)) if !name.is_empty() => Ok((name, path)),
        _ => Err(Error::Usage(format!(
            "{arg:?}: name the container and the path inside it as NAME:/PATH (web1:/etc/hosts)"
        ))),
    }
}

pub fn run(a: Args) -> Result<i32> {
    match a.cmd {
        Cmd::Push(p) => push(p),
        Cmd::Pull(p) => pull(p),
    }
}

fn push(p: Push) -> Result<i32> {
    let sys = p.common.system()?;
    let (name, path) = split_target(&p.target)?;
    let c = Container::new(&sys, name)?;
    let report = c.push(&PushOptions {
        source: p.source,
        dest: path.to_string(),
        recursive: p.recursive,
        parents: p.parents,
        uid: p.uid,
        gid: p.gid,
        mode: p.mode,
    })?;
    print_report("Pushed", &p.target, &report, p.common.quiet);
    Ok(0)
}

fn pull(p: Pull) -> Result<i32> {
    let sys = p.common.system()?;
    let (name, path) = split_target(&p.source)?;
    let c = Container::new(&sys, name)?;
    let report = c.pull(&PullOptions {
        source: path.to_string(),
        dest: p.dest.clone(),
        recursive: p.recursive,
    })?;
    print_report("Pulled", &p.source, &report, p.common.quiet);
    Ok(0)
}

/// Skips are warnings (shown even with -q); the summary goes to stderr like the other
/// commands' messages.
fn print_report(verb: &str, what: &str, r: &CopyReport, quiet: bool) {
    for (path, why) in &r.skipped {
        eprintln!("warning: skipped {}: {why}", super::shown(path));
    }
    if quiet {
        return;
    }
    let mut parts = vec![plural(r.files, "file")];
    if r.dirs > 0 {
        parts.push(plural(r.dirs, "directory"));
    }
    if r.symlinks > 0 {
        parts.push(plural(r.symlinks, "symlink"));
    }
    eprintln!(
        "{verb} {} ({} bytes): {}",
        parts.join(", "),
        r.bytes,
        super::shown(what)
    );
}

fn plural(n: u64, what: &str) -> String {
    match (n, what) {
        (1, w) => format!("1 {w}"),
        (n, "directory") => format!("{n} directories"),
        (n, w) => format!("{n} {w}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_modes_parse() {
        assert_eq!(split_target("web1:/etc/x").unwrap(), ("web1", "/etc/x"));
        assert_eq!(split_target("web1:/a:b").unwrap(), ("web1", "/a:b"));
        assert!(split_target("/etc/x").is_err() && split_target(":/x").is_err());
        assert_eq!(parse_mode("0644"), Ok(0o644));
        assert_eq!(parse_mode("4755"), Ok(0o4755));
        assert!(parse_mode("0899").is_err() && parse_mode("17777").is_err());
        assert_eq!(plural(2, "directory"), "2 directories");
        assert_eq!(plural(1, "file"), "1 file");
    }
}
