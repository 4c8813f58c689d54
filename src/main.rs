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
mod idmap;
mod image;
mod ipc;
mod name;
mod net;
mod par;
mod pattern;
mod rootfs;
mod runtime;
mod store;
// The one module that may use unsafe (the `unsafe_code` lint in Cargo.toml denies it elsewhere).
#[allow(unsafe_code)]
mod sys;
mod template;

fn main() {
    // rlxc-execute's init, executed from sealed copies (runtime::sealed).
    if let Some(code) = runtime::sealed::at_program_start() {
        std::process::exit(code);
    }
    std::process::exit(cli::main());
}
