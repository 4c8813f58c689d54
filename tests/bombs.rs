//! Decompression bombs: a rootfs.tar.xz of concatenated xz streams of zeros (100 KB that
//! expand to 512 MiB) stops at `[download] max_image_size`, or before the cache's file
//! system is full, and Ctrl-C (twice) stops it promptly. Nothing is left in the cache or
//! lxcpath. The cache lives on a small tmpfs the test mounts, so even a build without
//! these limits cannot fill the host's disk; the mount goes when the test ends, failed
//! or not.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One xz stream of 4 MiB of zeros (744 bytes), `n` times: a decoder that reads
/// concatenated streams, as LXC images need, makes `n` × 4 MiB of it.
fn bomb(n: usize) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(&vec![0u8; 4 << 20]).unwrap();
    let one = e.finish().unwrap();
    one.repeat(n)
}

/// A tmpfs of `size` mounted on `dir` (created), lazily unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            dir,
            Some("tmpfs"),
            nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
            Some(format!("size={size},mode=0700").as_str()),
        )
        .expect("mount a tmpfs (the tests run as root)");
        SmallFs(dir.to_path_buf())
    }

    fn avail(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(&self.0).unwrap();
        st.blocks_available() * st.fragment_size()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A mirror whose debian bookworm rootfs is `rootfs_xz` (checksums match: the bytes are
/// exactly what the server publishes), and a server that applies `fault` to it.
fn bomb_mirror(rootfs_xz: Vec<u8>, fault: Option<Fault>) -> (Mirror, HttpServer, Env) {
    let mut m = Mirror::new();
    let p = m.add_raw(
        &Image::new("debian", "bookworm", "b1"),
        rootfs_xz,
        xz(&default_meta()),
    );
    let s = HttpServer::start(m.dir.path());
    if let Some(f) = fault {
        s.fault(&format!("{p}rootfs.tar.xz"), f);
    }
    let env = Env::new(&s.url());
    (m, s, env)
}

const CREATE: &[&str] = &[
    "create", "-n", "c1", "-t", "download", "-d", "debian", "-r", "bookworm",
];

/// Everything left in the cache (directories too, so an empty staging directory counts)
/// and in lxcpath, but lock files and the cache's dist/release/arch directories.
fn leftovers(env: &Env) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(&p, base, out);
            }
        }
    }
    let chain = format!("download/debian/bookworm/{}", host_arch());
    let mut out = Vec::new();
    walk(&env.cachepath(), &env.cachepath(), &mut out);
    out.retain(|p| !p.ends_with(".lock") && !chain.starts_with(p.as_str()));
    out.extend(env.lxcpath_entries());
    out
}

/// The create must fail (not time out) with status 1; returns stderr.
fn create_fails(env: &Env) -> String {
    let (out, timed_out) = run_bounded(&env.cmd(CREATE), Duration::from_secs(60));
    let e = stderr(&out);
    assert!(!timed_out, "still running after 60 s: {e}");
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert!(
        !e.contains("No space left"),
        "stopped before the disk was full: {e}"
    );
    let left = leftovers(env);
    assert!(left.is_empty(), "left behind: {left:?}");
    e
}

#[test]
fn a_bomb_stops_at_max_image_size_and_says_which_key() {
    let (_m, _s, env) = bomb_mirror(bomb(128), None);
    env.write_config_with("", "max_image_size = \"64M\"");
    let _fs = SmallFs::mount(&env.cachepath(), "256m");
    let e = create_fails(&env);
    assert!(e.contains("rootfs.tar.xz of debian bookworm"), "{e}");
    assert!(e.contains("more than 64 MiB"), "{e}");
    assert!(
        e.contains("max_image_size") && e.contains("[download]"),
        "{e}"
    );
}

#[test]
fn a_bomb_stops_before_the_cache_file_system_is_full() {
    // The default limit (32 GiB) is far above this 96 MiB file system.
    let (_m, _s, env) = bomb_mirror(bomb(128), None);
    let fs = SmallFs::mount(&env.cachepath(), "96m");
    let e = create_fails(&env);
    assert!(e.contains("rootfs.tar.xz of debian bookworm"), "{e}");
    assert!(e.contains("free on the file system of"), "{e}");
    assert!(e.contains("less than 16 MiB"), "the reserve: {e}");
    assert!(e.contains(&env.cachepath().display().to_string()), "{e}");
    assert!(e.contains("free space"), "says what to do: {e}");
    assert!(fs.avail() > 95 << 20, "the staging files are gone");
}

/// Bit `sig` of a signal mask from /proc/PID/status (a hex field such as `ShdPnd:`).
fn pending(pid: u32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("SigPnd:") || l.starts_with("ShdPnd:"))
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .any(|mask| mask & (1 << (sig - 1)) != 0)
}

fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'))
}

#[test]
fn ctrl_c_twice_mid_decompression_stops_promptly_and_leaves_nothing() {
    // 4 MiB of output per 100 ms: the bomb would take 13 s, so the signals surely land
    // mid-decompression. The tmpfs only bounds a broken build.
    let (_m, _s, env) = bomb_mirror(bomb(128), Some(Fault::Slow(744)));
    let fs = SmallFs::mount(&env.cachepath(), "640m");
    let child = bounded(&env.cmd(CREATE)).spawn().unwrap();
    let pid = child.id();
    let staging = env
        .cachepath()
        .join(format!("download/debian/bookworm/{}", host_arch()))
        .join(format!(".default.partial.{pid}/rootfs.tar"));
    let t0 = Instant::now();
    while std::fs::metadata(&staging).map_or(0, |m| m.len()) < 16 << 20 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} never grew to 16 MiB",
            staging.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let sigint = nix::sys::signal::Signal::SIGINT;
    let target = nix::unistd::Pid::from_raw(pid as i32);
    nix::sys::signal::kill(target, sigint).unwrap();
    let t_signal = Instant::now();
    // The second once the first was taken (two pending SIGINTs would merge into one),
    // while the process is still unwinding.
    while pending(pid, sigint as i32) {
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(
        !is_zombie(pid),
        "exited before a second Ctrl-C could be sent"
    );
    nix::sys::signal::kill(target, sigint).unwrap();
    let (out, timed_out) = wait_bounded(child, Duration::from_secs(20));
    let took = t_signal.elapsed();
    let e = stderr(&out);
    assert!(!timed_out, "still running 20 s after Ctrl-C: {e}");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} after Ctrl-C: {e}"
    );
    // Not killed by the second signal: it unwound and reported.
    assert_eq!(out.status.code(), Some(130), "{:?}: {e}", out.status);
    assert!(e.contains("interrupted"), "{e}");
    let left = leftovers(&env);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(fs.avail() > 639 << 20, "the staging files are gone");
}
