//! Command line: one multi-call binary. `rlxc CMD ARGS` and `rlxc-CMD ARGS` are the same.
//! This is the only layer that prints, prompts or draws progress.

use std::cell::RefCell;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::SystemConfig;
use crate::container::Progress;
use crate::error::{Error, Result};

mod attach;
mod autostart;
mod bulk;
mod cgroup;
mod checkconfig;
mod config;
mod console;
mod copy;
mod create;
mod destroy;
mod device;
mod execute;
mod export;
mod file;
mod freeze;
mod gen;
mod image;
mod info;
mod ls;
mod migrate;
mod monitor;
mod net;
mod publish;
mod snapshot;
mod start;
mod stop;
mod table;
mod top;
mod wait;

#[derive(Parser)]
#[command(
    name = "rlxc",
    version,
    about = "System containers in the tradition of LXC"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

// Deferred: only the command run has its arguments built (all of them cost a third of
// a millisecond at every start). Its `about` is the variant's doc comment; a doc comment
// on a struct of arguments (a payload or a flattened one) would replace it when the
// arguments are built, so those have plain comments (`about_is_each_commands_own`).
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Create a container from a template (`-t download` fetches an image).
    Create(Box<create::Args>),
    /// List containers.
    Ls(ls::Args),
    /// Show a container's state and configuration.
    Info(info::Args),
    /// Remove a container and everything of it.
    Destroy(destroy::Args),
    /// Copy a stopped container under a new name, with its own MAC, host name and machine-id.
    Copy(copy::Args),
    /// Snapshots: take (-c COMMENT; a running container is frozen for the copy), list (-L), restore (-r), destroy (-d).
    Snapshot(snapshot::Args),
    /// Write a stopped container (config and rootfs) to one archive.
    Export(export::ExportArgs),
    /// Create a container from an archive rlxc-export wrote.
    Import(export::ImportArgs),
    /// Make a stopped container an image: rlxc-create -t image -n NAME ALIAS.
    Publish(publish::Args),
    /// Boot a container (foreground console by default, -d to daemonize).
    Start(start::Args),
    /// Halt, kill (-k) or reboot (-r) a container.
    Stop(stop::Args),
    /// Attach to a running container's console (-t N: its /dev/ttyN).
    Console(console::Args),
    /// Run a command inside a running container.
    Attach(attach::Args),
    /// Run a command as a stopped container's application under a small init; its exit status is ours.
    Execute(execute::Args),
    /// Give a running container a host device node or network interface (add), or take it back (del).
    Device(device::Args),
    /// Freeze every process of a running container (rlxc-info then says FROZEN).
    Freeze(Named),
    /// Thaw a frozen container.
    Unfreeze(Named),
    /// Read or set a controller file of a running container's cgroup (--persist: keep it in config.toml).
    Cgroup(cgroup::Args),
    /// What the running containers use, refreshed: CPU, memory, swap, block I/O, network, tasks.
    Top(top::Args),
    /// Copy files into (push) or out of (pull) a container, stopped or running.
    File(file::Args),
    /// Wait for a container to reach a state.
    Wait(wait::Args),
    /// State changes of containers as they happen (-n REGEX: of those whose name matches).
    Monitor(monitor::Args),
    /// Start (at boot) or stop (-s, at shutdown) the containers marked [autostart], by order.
    Autostart(autostart::Args),
    /// The managed bridge with DHCP, DNS and NAT: start, stop, status.
    Net(net::Args),
    /// The image cache: ls, rm, prune.
    Image(image::Args),
    /// Print or set keys of a container's config (-n NAME) or of rlxc.toml (--system).
    Config(config::Args),
    /// Make an existing LXC container (its config, a directory rootfs) an rlxc container.
    Migrate(migrate::Args),
    /// Check that this host can run containers (namespaces, cgroups, networking).
    Checkconfig(checkconfig::Args),
    #[command(name = "__netd", hide = true)]
    Netd(net::NetdArgs),
    #[command(name = "__gen-man", hide = true)]
    GenMan(gen::GenArgs),
    #[command(name = "__gen-completions", hide = true)]
    GenCompletions(gen::GenArgs),
}

// Options every command takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Use DIR instead of the configured lxcpath.
    #[arg(short = 'P', long = "lxcpath", value_name = "DIR", global = true)]
    pub lxcpath: Option<PathBuf>,
    /// Print only errors.
    #[arg(short = 'q', long = "quiet", global = true)]
    pub quiet: bool,
}

impl Common {
    /// System config with `-P` applied.
    pub fn system(&self) -> Result<SystemConfig> {
        let mut sys = SystemConfig::load()?;
        if let Some(p) = &self.lxcpath {
            let abs = std::path::absolute(p).map_err(|e| Error::io("resolve", p, e))?;
            crate::config::validate::install_dir(&abs)
                .map_err(|why| Error::Usage(format!("-P {}: {why}", p.display())))?;
            sys.lxcpath = abs;
        }
        Ok(sys)
    }
}

// The arguments of a verb that takes a container and nothing else.
#[derive(clap::Args, Debug)]
pub struct Named {
    /// Container name.
    #[arg(short = 'n', long = "name")]
    name: String,
    #[command(flatten)]
    common: Common,
}

/// A usage error clap cannot see (a combination of values), printed as clap prints its
/// own, with its exit code (2).
fn usage_error<A: clap::Args>(verb: &str, msg: impl std::fmt::Display) -> i32 {
    let mut cmd =
        A::augment_args(clap::Command::new(verb.to_string())).bin_name(format!("rlxc {verb}"));
    let e = cmd.error(clap::error::ErrorKind::ArgumentConflict, msg);
    let _ = e.print();
    e.exit_code()
}

/// `rlxc-create -n x` → `rlxc create -n x`.
fn multicall(mut argv: Vec<OsString>) -> Vec<OsString> {
    let prog = argv
        .first()
        .map(|a| {
            let p = PathBuf::from(a);
            p.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    if let Some(cmd) = prog.strip_prefix("rlxc-") {
        argv[0] = "rlxc".into();
        argv.insert(1, cmd.into());
    }
    argv
}

fn program_name(argv: &[OsString]) -> String {
    match argv.get(1) {
        Some(c) if !c.to_string_lossy().starts_with('-') => format!("rlxc-{}", c.to_string_lossy()),
        _ => "rlxc".into(),
    }
}

pub fn main() -> i32 {
    let argv = multicall(std::env::args_os().collect());
    let prog = program_name(&argv);
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    crate::sys::catch_interrupts();
    if !matches!(cli.cmd, Command::Netd(_)) {
        // `rlxc-ls | head` should end quietly. The dnsmasq supervisor and the monitor
        // (forked by rlxc-start, see runtime::spawn_monitor) keep ignoring SIGPIPE so a
        // vanished client never kills them.
        crate::sys::default_sigpipe();
    }
    let res = match cli.cmd {
        Command::Create(a) => create::run(*a),
        Command::Ls(a) => ls::run(a),
        Command::Info(a) => info::run(a),
        Command::Destroy(a) => destroy::run(a),
        Command::Copy(a) => copy::run(a),
        Command::Snapshot(a) => snapshot::run(a),
        Command::Export(a) => export::export(a),
        Command::Import(a) => export::import(a),
        Command::Publish(a) => publish::run(a),
        Command::Start(a) => start::run(a),
        Command::Stop(a) => stop::run(a),
        Command::Console(a) => console::run(a),
        Command::Attach(a) => attach::run(a),
        Command::Device(a) => device::run(a),
        Command::Execute(a) => execute::run(a),
        Command::Freeze(a) => freeze::run(a, true),
        Command::Unfreeze(a) => freeze::run(a, false),
        Command::Cgroup(a) => cgroup::run(a),
        Command::Top(a) => top::run(a),
        Command::File(a) => file::run(a),
        Command::Wait(a) => wait::run(a),
        Command::Monitor(a) => monitor::run(a),
        Command::Autostart(a) => autostart::run(a),
        Command::Net(a) => net::run(a),
        Command::Image(a) => image::run(a),
        Command::Checkconfig(a) => checkconfig::run(a),
        Command::Config(a) => config::run(a),
        Command::Migrate(a) => migrate::run(a),
        Command::Netd(a) => net::netd(a),
        Command::GenMan(a) => gen::man(a),
        Command::GenCompletions(a) => gen::completions(a),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            report(&prog, &e);
            if matches!(e, Error::Interrupted) {
                130
            } else {
                1
            }
        }
    }
}

/// Print the error, its causes once each, and a hint.
fn report(prog: &str, e: &Error) {
    eprintln!("{prog}: error: {}", shown(&e.to_string()));
    for s in crate::error::causes(e) {
        eprintln!("  caused by: {}", shown(&s.to_string()));
    }
    if let Some(h) = e.hint() {
        eprintln!("  hint: {}", shown(&h));
    }
}

/// An error for a sysadmin's terminal: it can hold what an image or a container chose
/// (member and mount paths, a child's reason), so control characters (escape sequences)
/// are shown, not sent.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Progress bars on a terminal, plain lines otherwise, nothing with -q.
pub struct Reporter {
    quiet: bool,
    tty: bool,
    bar: RefCell<Option<indicatif::ProgressBar>>,
}

impl Reporter {
    pub fn new(quiet: bool) -> Self {
        Reporter {
            quiet,
            tty: std::io::stderr().is_terminal(),
            bar: RefCell::new(None),
        }
    }
}

impl Progress for Reporter {
    fn start(&self, label: &str, total: Option<u64>) {
        if self.quiet || !self.tty {
            return;
        }
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "{msg:16} [{bar:30}] {bytes:>10}/{total_bytes:10} {bytes_per_sec:>12} {eta:>4}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        *self.bar.borrow_mut() = Some(bar);
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = self.bar.borrow().as_ref() {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = self.bar.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
    fn message(&self, msg: &str) {
        let is_warning = msg.starts_with("warning:");
        if self.quiet && !is_warning {
            return;
        }
        match self.bar.borrow().as_ref() {
            Some(b) => b.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

pub fn stdin_is_tty() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicall_names_dispatch() {
        let v = multicall(vec!["/usr/bin/rlxc-create".into(), "-n".into(), "x".into()]);
        assert_eq!(
            v,
            vec![
                OsString::from("rlxc"),
                "create".into(),
                "-n".into(),
                "x".into()
            ]
        );
        let v = multicall(vec!["rlxc".into(), "ls".into()]);
        assert_eq!(v, vec![OsString::from("rlxc"), "ls".into()]);
    }

    #[test]
    fn a_reason_reaches_the_terminal_without_its_escape_sequences() {
        let e = shown("mount /x\u{1b}[2J\n: No such file");
        assert_eq!(e, "mount /x\\u{1b}[2J\\n: No such file");
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// Once its deferred arguments are built, each command still says what it does in
    /// its own words (its variant's doc comment, set before): a doc comment on a struct
    /// of arguments would have replaced them.
    #[test]
    fn about_is_each_commands_own() {
        use clap::CommandFactory;
        let abouts = |c: &clap::Command| -> Vec<String> {
            c.get_subcommands()
                .map(|s| format!("{}: {:?}", s.get_name(), s.get_about()))
                .collect()
        };
        let unbuilt = Cli::command();
        let mut built = unbuilt.clone();
        built.build();
        let before = abouts(&unbuilt);
        // The build adds `help`, last.
        assert_eq!(abouts(&built)[..before.len()], before);
    }
}
