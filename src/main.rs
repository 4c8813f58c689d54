//! rlxc: system containers in the tradition of LXC. One multi-call binary:
//! `rlxc CMD …` or `rlxc-CMD …`.

mod cli;
mod config;
mod container;
mod error;
mod image;
mod name;
mod rootfs;
mod store;
mod sys;

fn main() {
    std::process::exit(cli::main());
}
