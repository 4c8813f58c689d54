//! A running busybox (or Debian) container from the fixture mirror, for end-to-end
//! tests: start, attach, info, and a check that nothing of it is left on the host.

use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A unique container name per test (cgroups are host-wide).
pub fn unique(tag: &str) -> String {
    format!("t{}-{tag}", std::process::id())
}

/// `NAME.TAG` as rlxc keys a container's host objects (FNV-1a of the lxcpath).
pub fn host_key(lxcpath: &Path, name: &str) -> String {
    let tag = lxcpath
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
    format!("{name}.{:08x}", tag as u32)
}

pub struct Rt {
    pub env: Env,
    pub server: HttpServer,
    pub name: String,
}

impl Rt {
    /// A busybox container with the given extra config (default: an empty network).
    pub fn new(tag: &str, config: &str) -> Self {
        Self::with_image("busybox", &busybox_release(), tag, config)
    }

    pub fn with_image(dist: &str, release: &str, tag: &str, config: &str) -> Self {
        let server = HttpServer::start(&fixture_mirror());
        let env = Env::new(&server.url());
        let name = unique(tag);
        let config = if config.is_empty() {
            "[[network]]\ntype = \"empty\"\n"
        } else {
            config
        };
        env.create_with(&name, dist, release, config);
        Rt { env, server, name }
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["-n", &self.name]);
        self.env.ok(&v)
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let mut v: Vec<&str> = args.to_vec();
        v.extend(["-n", &self.name]);
        self.env.run(&v)
    }

    pub fn info(&self) -> String {
        self.ok(&["info"])
    }

    /// Its monitor's run directory, `RUNPATH/NAME.TAG`.
    pub fn run_dir(&self) -> PathBuf {
        let key = host_key(&self.env.lxcpath(), &self.name);
        self.env.dir.path().join("run").join(key)
    }

    /// Its monitor's pid, while one runs.
    pub fn monitor_pid(&self) -> Option<i32> {
        let ps = Command::new("ps")
            .args(["-eo", "pid,args"])
            .output()
            .unwrap();
        stdout(&ps)
            .lines()
            .find(|l| l.contains(&format!("[rlxc monitor] {} ", self.name)))
            .and_then(|l| l.split_whitespace().next()?.parse().ok())
    }

    pub fn init_pid(&self) -> Option<i32> {
        self.info()
            .lines()
            .find_map(|l| l.strip_prefix("PID:"))
            .and_then(|p| p.trim().parse().ok())
    }

    pub fn attach(&self, cmd: &[&str]) -> std::process::Output {
        let mut v = vec!["attach", "-n", &self.name, "--"];
        v.extend(cmd);
        self.env.run(&v)
    }

    /// `rlxc-stop -r`, then wait until init is another process: its pids before and after.
    pub fn reboot(&self) -> (i32, i32) {
        let first = self.init_pid().expect("running before the reboot");
        self.ok(&["stop", "-r"]);
        let t0 = Instant::now();
        loop {
            if let Some(p) = self.init_pid().filter(|p| *p != first) {
                return (first, p);
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "no reboot: {}",
                self.info()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run rlxc with this test's config in a tmux session.
    pub fn tmux(&self, args: &str) -> Tmux {
        let cfg = self.env.dir.path().join("rlxc.toml");
        let bin = env!("CARGO_BIN_EXE_rlxc");
        Tmux::start(&format!(
            "RLXC_CONFIG={} {bin} {args}; echo EXIT=$?; sleep 60",
            cfg.display()
        ))
    }

    /// Log in as root (the fixtures' password) at the console shown in `t`.
    pub fn log_in(&self, t: &Tmux) {
        t.keys(&["Enter"]);
        t.log_in_as_root(&self.name, "rlxc");
    }

    /// systemd settles at "running" with no failed unit.
    pub fn assert_system_running(&self) {
        let state = self.wait_system_running(Duration::from_secs(120));
        let failed = stdout(&self.attach(&[
            "systemctl",
            "--failed",
            "--no-legend",
            "--plain",
            "--no-pager",
        ]));
        assert_eq!(state, "running", "failed units:\n{failed}");
        assert!(failed.trim().is_empty(), "{failed}");
    }

    /// A root login on the console of a Debian container, where systemd says it runs;
    /// then detach.
    pub fn console_login_sees_running(&self) {
        let t = self.tmux(&format!("console -n {}", self.name));
        self.log_in(&t);
        t.keys(&["systemctl is-system-running | sed s/^/STATE-/", "Enter"]);
        t.wait_for("STATE-running");
        t.keys(&["C-a", "q"]);
        t.wait_for("EXIT=0");
    }

    /// A clean halt: systemd gets SIGRTMIN+3 and powers off well before the timeout;
    /// nothing is left.
    pub fn halt_systemd(&self) {
        let t0 = Instant::now();
        self.ok(&["stop", "-t", "60"]);
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "halt took {:?}: killed at the timeout?",
            t0.elapsed()
        );
        self.assert_clean();
    }

    /// Poll `systemctl is-system-running` until it settles.
    pub fn wait_system_running(&self, limit: Duration) -> String {
        wait_system_running_of(&self.env, &self.name, limit)
    }

    /// Nothing of the container is left on the host.
    pub fn assert_clean(&self) {
        let t0 = Instant::now();
        loop {
            let leftovers = self.leftovers();
            if leftovers.is_empty() {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "left behind: {leftovers:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn leftovers(&self) -> Vec<String> {
        let mut out = Vec::new();
        for h in cgroup_mounts() {
            // rlxc/NAME.TAG, TAG naming the installation.
            let prefix = format!("{}.", self.name);
            for e in std::fs::read_dir(h.join("rlxc"))
                .into_iter()
                .flatten()
                .flatten()
            {
                if e.file_name().to_string_lossy().starts_with(&prefix) {
                    out.push(e.path().display().to_string());
                }
            }
        }
        let mounts = read("/proc/self/mountinfo");
        let rootfs = self.env.rootfs(&self.name).display().to_string();
        if mounts.contains(&rootfs) {
            out.push(format!("a mount under {rootfs}"));
        }
        let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
        for l in stdout(&ps).lines() {
            if l.contains(&format!("[rlxc monitor] {}", self.name)) {
                out.push(l.to_string());
            }
        }
        let run = self.env.dir.path().join("run");
        if let Ok(rd) = std::fs::read_dir(&run) {
            for e in rd.flatten() {
                out.push(e.path().display().to_string());
            }
        }
        out
    }
}

impl Drop for Rt {
    fn drop(&mut self) {
        // Whatever happened in the test, nothing keeps running.
        let _ = self.env.run(&["stop", "-k", "-n", &self.name]);
    }
}

/// A container a test made besides its `Rt`: stopped and destroyed on drop, whatever
/// the test did.
pub struct Made<'a> {
    pub env: &'a Env,
    pub name: String,
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        let _ = self.env.run(&["stop", "-k", "-n", &self.name]);
        let _ = self.env.run(&["destroy", "-f", "-n", &self.name]);
    }
}

pub fn cgroup_mounts() -> Vec<PathBuf> {
    read("/proc/self/mountinfo")
        .lines()
        .filter(|l| l.contains(" - cgroup ") || l.contains(" - cgroup2 "))
        .filter_map(|l| l.split_whitespace().nth(4).map(PathBuf::from))
        .collect()
}

/// Poll `systemctl is-system-running` in container `name` until it settles.
pub fn wait_system_running_of(env: &Env, name: &str, limit: Duration) -> String {
    let attach = |cmd: &[&str]| {
        let mut v = vec!["attach", "-n", name, "--"];
        v.extend(cmd);
        env.run(&v)
    };
    let t0 = Instant::now();
    loop {
        let out = attach(&["systemctl", "is-system-running"]);
        let state = stdout(&out).trim().to_string();
        // "offline": systemctl cannot reach the manager yet (early boot).
        if !matches!(state.as_str(), "initializing" | "starting" | "offline" | "") {
            return state;
        }
        if t0.elapsed() >= limit {
            let probe = attach(&[
                "/bin/sh",
                "-c",
                "ls -la /usr/bin/systemctl; head -2 /etc/os-release; echo PATH=$PATH",
            ]);
            panic!(
                "systemd did not settle: {state:?} {}\nprobe: {} {}",
                stderr(&out),
                stdout(&probe),
                stderr(&probe)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A bridge for one test, with a name no real setup uses; removed on drop.
pub struct Bridge {
    pub name: String,
}

impl Bridge {
    pub fn new() -> Self {
        let name = format!("rlxct{}", std::process::id() % 100_000);
        let st = Command::new("ip")
            .args(["link", "add", &name, "type", "bridge"])
            .status()
            .unwrap();
        assert!(st.success(), "cannot create test bridge {name}");
        Command::new("ip")
            .args(["link", "set", &name, "up"])
            .status()
            .unwrap();
        Bridge { name }
    }

    pub fn ports(&self) -> Vec<String> {
        bridge_ports(&self.name)
    }
}

/// The interfaces attached to `bridge` (none when it does not exist).
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}
