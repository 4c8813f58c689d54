//! rlxc-execute's init, run from sealed copies. The init is rlxc's own code and stays
//! the container's PID 1; forked from the monitor, its /proc/1/exe and
//! /proc/1/map_files would be the host's rlxc binary and libraries, which the
//! container's root could open (and the libraries write: runc's CVE-2019-5736). So the
//! monitor copies the binary, the dynamic linker and the libraries into sealed memfds
//! (`sys::memfd`), and the child, once set up, executes the linker from its copy with
//! the others preloaded by /proc/self/fd path: the init maps only copies that no one
//! can write, resize or unseal, and holds no descriptor of the host's but its stdio.
//! (A copy per run, not one kept: the kernel copies the release binary in 10-25 ms.)

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::child::{AppSpec, AppStdio};
use crate::error::{Error, IoContext, Result};
use crate::ipc::{self, FromChild, Stage};
use crate::sys;

/// argv[1] of the executed init.
const MARK: &str = "__rlxc_execute_init";

/// Sealed copies of what the init runs on; made in the monitor, executed by the child.
pub struct SealedInit {
    program: OwnedFd,
    /// The dynamic linker, executed with `program` as its argument; None: `program` is
    /// static and executed itself.
    interp: Option<OwnedFd>,
    libs: Vec<OwnedFd>,
}

impl SealedInit {
    /// Copy this program and what it is linked with.
    pub fn copy() -> Result<Self> {
        let exe = "/proc/self/exe";
        let mut f = std::fs::File::open(exe).ctx("open", exe)?;
        let program = sys::memfd::sealed_copy(&mut f, "rlxc-execute-init")
            .map_err(|e| copy_error(Path::new(exe), e))?;
        let loaded = STARTUP_OBJECTS.get_or_init(sys::memfd::loaded_objects);
        // What is mapped, not what the path holds now: a package upgrade may have
        // replaced the file since this process started.
        let maps_file = "/proc/self/maps";
        let maps = std::fs::read_to_string(maps_file).ctx("read", maps_file)?;
        let copy_of = |obj: &sys::memfd::Object| -> Result<OwnedFd> {
            let p = &obj.path;
            let mut f = sys::memfd::open_mapped(&maps, obj).ctx("open", p)?;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            sys::memfd::sealed_copy(&mut f, &format!("rlxc-execute-init:{name}"))
                .map_err(|e| copy_error(p, e))
        };
        let interp = loaded.interp.as_ref().map(copy_of).transpose()?;
        let libs = loaded.libs.iter().map(copy_of).collect::<Result<_>>()?;
        Ok(SealedInit {
            program,
            interp,
            libs,
        })
    }

    /// In the child, set up and pivoted: become the init of `argv` (with `env`) from the
    /// copies; it tells the monitor on `sync` that it runs. Returns only on failure.
    pub fn exec(
        &self,
        sync: BorrowedFd<'_>,
        argv: &[CString],
        env: &[CString],
        app: &AppSpec,
    ) -> Result<std::convert::Infallible> {
        let fd_path = |fd: BorrowedFd<'_>| format!("/proc/self/fd/{}", fd.as_raw_fd());
        let mut args: Vec<String> = vec!["rlxc-execute-init".into()];
        let target = match &self.interp {
            Some(interp) => {
                // The linker run as a program: it maps the program and the preloaded
                // libraries, which stand for the program's DT_NEEDED by their sonames.
                if !self.libs.is_empty() {
                    let libs: Vec<String> = self.libs.iter().map(|l| fd_path(l.as_fd())).collect();
                    args.extend(["--preload".into(), libs.join(":")]);
                }
                args.push(fd_path(self.program.as_fd()));
                interp.as_fd()
            }
            None => self.program.as_fd(),
        };
        let tty = matches!(app.stdio, AppStdio::Console);
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        args.extend([
            MARK.into(),
            sync.as_raw_fd().to_string(),
            u8::from(tty).to_string(),
            or_dash(app.cwd.clone()),
            or_dash(app.user.map(String::from)),
            or_dash(app.stop.map(|s| s.to_string())),
            "--".into(),
        ]);
        let mut cargs: Vec<CString> = args
            .into_iter()
            .map(|a| CString::new(a).map_err(|_| Error::Other("a NUL byte in an argument".into())))
            .collect::<Result<_>>()?;
        cargs.extend(argv.iter().cloned());
        let open = std::iter::once(sync)
            .chain(std::iter::once(self.program.as_fd()))
            .chain(self.libs.iter().map(|l| l.as_fd()));
        for fd in open {
            sys::memfd::keep_on_exec(fd).ctx("keep open for", "rlxc-execute's init")?;
        }
        let e = nix::unistd::fexecve(target, &cargs, env).unwrap_err();
        Err(Error::io(
            "execute",
            "rlxc-execute's init (a sealed copy of rlxc)",
            e.into(),
        ))
    }
}

fn copy_error(p: &Path, e: std::io::Error) -> Error {
    let hint = if e.raw_os_error() == Some(libc::EACCES) {
        " (vm.memfd_noexec = 2 forbids executable memfds, which rlxc-execute's init runs from)"
    } else {
        ""
    };
    Error::Other(format!(
        "cannot make a sealed copy of {} for rlxc-execute's init: {e}{hint}",
        p.display()
    ))
}

/// The shared objects the program was started with (not those a library loaded later,
/// such as an NSS module, whose own dependencies the container could not provide).
static STARTUP_OBJECTS: std::sync::OnceLock<sys::memfd::Loaded> = std::sync::OnceLock::new();

/// `main`'s first step: in the process `SealedInit::exec` started, run the init and
/// never return; anywhere else, note the startup objects and return None.
pub fn at_program_start() -> Option<i32> {
    STARTUP_OBJECTS.get_or_init(sys::memfd::loaded_objects);
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() != Some(MARK.as_ref()) {
        return None;
    }
    Some(run_init(args.collect()))
}

/// The command's spec from the init's arguments (SYNC TTY CWD USER STOP -- CMD...,
/// `-` for none): a user or stop signal that does not parse is an error, never root or
/// the default.
fn app_spec(args: &[OsString]) -> std::result::Result<AppSpec, String> {
    if args.len() < 6 {
        return Err("cut short".into());
    }
    if args[5] != "--" {
        return Err("no -- before the command".into());
    }
    let word = |i: usize| args[i].to_str().filter(|w| *w != "-");
    fn parsed<T: std::str::FromStr>(w: Option<&str>) -> std::result::Result<Option<T>, String> {
        w.map(|w| w.parse().map_err(|_| format!("{w:?} does not parse")))
            .transpose()
    }
    Ok(AppSpec {
        // Its stdio is in place: 0, 1 and 2.
        stdio: if args[1] == "1" {
            AppStdio::Console
        } else {
            AppStdio::Fds([0, 1, 2])
        },
        cwd: word(2).map(String::from),
        user: parsed(word(3))?,
        stop: parsed::<i32>(word(4))?,
    })
}

fn run_init(args: Vec<OsString>) -> i32 {
    // Its end kills every process it can (as the end of an init does): only as the
    // PID 1 of a container.
    if std::process::id() != 1 {
        eprintln!("rlxc: {MARK} is rlxc-execute's init, run by rlxc itself");
        return 2;
    }
    // Every argument is checked before the monitor hears the init runs.
    let app = match app_spec(&args) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("rlxc-execute: error: the init's arguments: {e}");
            return 126;
        }
    };
    let sync = &args[0];
    let _ = nix::sys::prctl::set_name(c"rlxc-init");
    if let Some(fd) = sync.to_str().and_then(|s| s.parse::<i32>().ok()) {
        tell_monitor(sys::borrow_fd(fd));
    }
    // The copies' descriptors and the sync socket: nothing of the host's stays open.
    if let Err(e) = sys::close_fds_from(3) {
        eprintln!("rlxc-execute: error: cannot close the init's descriptors: {e}");
        return 126;
    }
    let to_c = |s: &[u8]| CString::new(s).ok();
    let argv: Vec<CString> = args[6..]
        .iter()
        .filter_map(|a| to_c(a.as_bytes()))
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| to_c(&[k.as_bytes(), b"=", v.as_bytes()].concat()))
        .collect();
    super::child::app_init(&argv, &env, &app)
}

/// Tell the monitor the init runs (in place of the exec it waits for), if `fd` is the
/// sync socket.
fn tell_monitor(fd: BorrowedFd<'_>) {
    let is_socket =
        nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
    if is_socket {
        let _ = ipc::send_packet(
            fd,
            &FromChild::Reached {
                stage: Stage::Network,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<OsString> {
        words.iter().map(OsString::from).collect()
    }

    #[test]
    fn init_arguments_that_do_not_parse_are_refused_not_taken_as_root() {
        let ok = app_spec(&args(&["5", "0", "/srv", "1000:1000", "15", "--", "sh"])).unwrap();
        assert_eq!(ok.user.map(|u| (u.uid, u.gid)), Some((1000, 1000)));
        assert_eq!(ok.stop, Some(15));
        let none = app_spec(&args(&["5", "1", "-", "-", "-", "--", "sh"])).unwrap();
        assert!(none.user.is_none() && none.stop.is_none() && none.cwd.is_none());
        for bad in [
            &["5", "0", "-", "nobody", "-", "--", "sh"][..],
            &["5", "0", "-", "-", "TERM", "--", "sh"],
            &["5", "0", "-", "-", "-", "sh", "x"],
            &["5", "0", "-", "-", "--"],
        ] {
            assert!(app_spec(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
