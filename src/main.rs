//! rlxc: system containers in the tradition of LXC. One multi-call binary:
//! `rlxc CMD …` or `rlxc-CMD …`.

mod apparmor;
mod attach;
mod cgroup;
mod cli;
mod config;
mod console;
mod container;
mod error;
mod image;
mod name;
mod net;
mod rootfs;
mod runtime;
mod store;
mod sys;

fn main() {
    std::process::exit(cli::main());
}
