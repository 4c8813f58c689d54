//! The AppArmor profile containers run under: the policy of LXC's
//! `lxc-container-default-cgns` (the host's kernel knobs and kernel file systems stay
//! out of reach), written for rlxc's mount layout and for what systemd 252+ does in
//! its services' namespaces.
//!
//! Mount rules, as AppArmor 3 enforces them (each form was tried in the VM test's
//! kernel): allow rules that name options or targets match more than they say (a
//! `remount options=(ro, bind)` rule lets every bind through), while deny rules and a
//! plain `mount,` do what they say. So mounts are allowed, and what would reach the
//! host is denied: devpts; new proc and sysfs instances, and binds out of /proc or
//! /sys, anywhere the path rules below let a write through; the file systems that
//! control the whole machine; read-only remounts of a superblock (the container's root
//! is the host's file system). AppArmor has no "everything but" pattern and a deny
//! always wins, so the parts of /proc and /sys a container may write are carved out by
//! denying every other name, letter by letter (`deny_all_but`).

/// What a system container may do: everything a privileged process may, except what
/// reaches the host through the kernel's global knobs or the host's mounts.
const RULES: &str = r#"
  network,
  capability,
  file,
  umount,
  mount,
  dbus,
  signal (receive),
  signal peer=@{profile_name},
  ptrace (readby, tracedby),
  ptrace peer=@{profile_name},
  unix (receive),
  unix peer=(label=@{profile_name}),

  # Without newinstance devpts is the host's; the others control the whole machine.
  deny mount fstype=devpts,
  deny mount fstype=binfmt_misc,
  deny mount fstype=securityfs,
  deny mount fstype=debugfs,
  deny mount fstype=tracefs,
  deny mount fstype=bpf,
  deny mount fstype=configfs,
  deny mount fstype=efivarfs,
  deny mount fstype=pstore,
  deny mount fstype=nfsd,

"#;

/// Where a proc or sysfs instance may be: the container's own, and where systemd
/// builds a service's root before it pivots into it (ProtectProc=, ProcSubset=, ...;
/// `unit-root` up to systemd 254, `mount-rootfs` from 255 on). Each is held to the
/// same path rules.
const PROC_ROOTS: &[&str] = &[
    "proc",
    "run/systemd/unit-root/proc",
    "run/systemd/mount-rootfs/proc",
];
const SYS_ROOTS: &[&str] = &[
    "sys",
    "run/systemd/unit-root/sys",
    "run/systemd/mount-rootfs/sys",
];

/// Below /proc only the container's processes (pid directories, self), the network
/// namespace's knobs and the namespaced kernel.* ones (its hostname, IPC limits) may be
/// written; everything else there is the machine's (/proc/sys, sysrq-trigger, irq/…).
const PROC_WRITABLE: &[&str] = &[
    "0*",
    "1*",
    "2*",
    "3*",
    "4*",
    "5*",
    "6*",
    "7*",
    "8*",
    "9*",
    "self",
    "thread-self",
    "sys/net",
    "sys/kernel/shm*",
    "sys/kernel/msg*",
    "sys/kernel/sem*",
    "sys/kernel/hostname",
    "sys/kernel/domainname",
];

/// Of those, what may be bound elsewhere: the container's own knobs. A pid directory
/// may not (its `root` is the container's root, /proc and all).
const PROC_BINDABLE: &[&str] = &[
    "sys/net",
    "sys/kernel/shm*",
    "sys/kernel/msg*",
    "sys/kernel/sem*",
    "sys/kernel/hostname",
    "sys/kernel/domainname",
];

/// Below /sys only cgroups (systemd) and the container's own network devices.
const SYS_WRITABLE: &[&str] = &["fs/cgroup", "class/net", "devices/virtual/net", "fs/fuse"];

/// Where the path rules let writes through: everything outside the proc and sysfs
/// places, and the writable parts inside them. A proc or sysfs instance, or a bind of
/// something from one, must never land there.
fn writable_places() -> Vec<String> {
    let roots: Vec<&str> = PROC_ROOTS.iter().chain(SYS_ROOTS).copied().collect();
    let mut v = deny_all_but("/", &roots);
    for r in PROC_ROOTS {
        v.extend(PROC_WRITABLE.iter().map(|k| format!("/{r}/{k}{TREE}")));
    }
    for r in SYS_ROOTS {
        v.extend(SYS_WRITABLE.iter().map(|k| format!("/{r}/{k}{TREE}")));
    }
    v
}

/// What of the proc and sysfs places is the host's (all but the writable parts): bound
/// somewhere writable, it would be written through the other path. (systemd binds the
/// writable parts onto themselves: ProtectHostname=.)
fn foreign_sources() -> Vec<String> {
    let mut v = Vec::new();
    for (roots, keep) in [(PROC_ROOTS, PROC_BINDABLE), (SYS_ROOTS, SYS_WRITABLE)] {
        for r in roots {
            v.push(format!("/{r}{{,/}}"));
            v.extend(deny_all_but(&format!("/{r}/"), keep));
        }
    }
    v
}

/// The directories above the proc and sysfs places (`/`, `/run`, …): a recursive bind
/// of one carries the instance below it along, writable under another path.
fn ancestors() -> Vec<String> {
    let mut v = vec!["/".to_string()];
    for r in PROC_ROOTS.iter().chain(SYS_ROOTS) {
        let parts: Vec<&str> = r.split('/').collect();
        for n in 1..parts.len() {
            let a = format!("/{}{{,/}}", parts[..n].join("/"));
            if !v.contains(&a) {
                v.push(a);
            }
        }
    }
    v
}

/// Where systemd binds the root recursively to build a service's namespace (before
/// and from systemd 255); the proc and sysfs places inside have path rules of their own.
const UNIT_ROOTS: &[&str] = &[
    "/run/systemd/unit-root{,/}",
    "/run/systemd/mount-rootfs{,/}",
];

/// The path rules for one proc place: the kernel's own files, and /proc/sys but for
/// what is the container's.
fn proc_file_rules(root: &str) -> Vec<String> {
    let mut v: Vec<String> = ["kcore rwklx", "sysrq-trigger rwklx", "acpi/** rwklx"]
        .iter()
        .map(|r| format!("  deny /{root}/{r},\n"))
        .collect();
    v.extend(
        deny_all_but(&format!("/{root}/"), PROC_WRITABLE)
            .into_iter()
            .map(|p| format!("  deny {p} wklx,\n")),
    );
    v
}

/// The path rules for one sysfs place: firmware and LSM files, and /sys but for what
/// is the container's.
fn sys_file_rules(root: &str) -> Vec<String> {
    let mut v: Vec<String> = [
        "firmware/efi/efivars/** rwklx",
        "kernel/security/** rwklx",
        "kernel/debug/{,**} rwklx",
    ]
    .iter()
    .map(|r| format!("  deny /{root}/{r},\n"))
    .collect();
    v.extend(
        deny_all_but(&format!("/{root}/"), SYS_WRITABLE)
            .into_iter()
            .map(|p| format!("  deny {p} wklx,\n")),
    );
    v
}

/// Read-only remounts without `bind` change a superblock: the host's, for the root and
/// for any bind from the host. One rule per combination of flags such a remount carries.
fn superblock_remounts() -> Vec<String> {
    (0..16u8)
        .map(|bits| {
            let mut opts = vec!["ro", "remount"];
            for (i, f) in ["nosuid", "nodev", "noexec", "silent"].iter().enumerate() {
                if bits & (1 << i) != 0 {
                    opts.push(f);
                }
            }
            format!("  deny mount options=({}),\n", opts.join(", "))
        })
        .collect()
}

/// The longest alternation in one rule, in bytes: two of them and the rest of a rule
/// stay well under the 16 KiB apparmor_parser's lexer takes in one token.
const ALTERNATION_MAX: usize = 6000;

/// `patterns` as `{a,b,...}` alternations of at most ALTERNATION_MAX bytes each.
fn alternations(patterns: &[String]) -> Vec<String> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut len = 0;
    for p in patterns {
        match out.last_mut() {
            Some(group) if len + p.len() < ALTERNATION_MAX => group.push(p),
            _ => {
                out.push(vec![p]);
                len = 0;
            }
        }
        len += p.len() + 1;
    }
    out.into_iter()
        .map(|group| format!("{{{}}}", group.join(",")))
        .collect()
}

/// The whole profile, named `name`.
pub fn text(name: &str) -> String {
    let mut p = format!("profile {name} flags=(attach_disconnected,mediate_deleted) {{\n");
    p.push_str(RULES);
    // The patterns as alternations (a rule per pair would be thousands), cut into
    // rules short enough for apparmor_parser's lexer (a token of 16 KiB overflows it).
    let places = alternations(&writable_places());
    let sources = alternations(&foreign_sources());
    let elsewhere: Vec<String> = writable_places()
        .into_iter()
        .filter(|w| !UNIT_ROOTS.contains(&w.as_str()))
        .collect();
    let ancestors = alternations(&ancestors());
    for to in &places {
        p.push_str(&format!("  deny mount fstype=proc -> {to},\n"));
        p.push_str(&format!("  deny mount fstype=sysfs -> {to},\n"));
        for from in &sources {
            p.push_str(&format!("  deny mount {from} -> {to},\n"));
        }
    }
    for to in alternations(&elsewhere) {
        for from in &ancestors {
            p.push_str(&format!("  deny mount {from} -> {to},\n"));
        }
    }
    p.extend(superblock_remounts());
    p.extend(PROC_ROOTS.iter().flat_map(|r| proc_file_rules(r)));
    p.extend(SYS_ROOTS.iter().flat_map(|r| sys_file_rules(r)));
    p.push_str("}\n");
    p
}

/// Patterns matching every path below `dir` except the subtrees `keep` (relative,
/// `/`-separated; a trailing `*` keeps every name with that start). A kept name's
/// longer siblings (`netfoo` beside `net`) are matched too.
pub fn deny_all_but(dir: &str, keep: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let words: Vec<&str> = keep.to_vec();
    branch(dir, "", &words, &mut out);
    out
}

/// Below `prefix` + `done`, with `rest` the remainders of the kept words that start
/// with `done`: deny each first letter no word has, and go down the letters they have.
fn branch(prefix: &str, done: &str, rest: &[&str], out: &mut Vec<String>) {
    // A word ends here: the subtree is kept, longer names are not.
    if rest.iter().any(|w| w.is_empty()) {
        out.push(format!("{prefix}{done}?*{TREE}"));
        return;
    }
    // A path component ends here: the directory itself is not kept (something mounted
    // on it would cover the kept names), its other entries and longer names are not
    // either; the kept ones go on a level down.
    if rest.iter().all(|w| w.starts_with('/')) {
        let next: Vec<&str> = rest.iter().map(|w| &w[1..]).collect();
        out.push(format!("{prefix}{done}{{,/}}"));
        branch(&format!("{prefix}{done}/"), "", &next, out);
        out.push(format!("{prefix}{done}?*{TREE}"));
        return;
    }
    let mut firsts: Vec<char> = rest.iter().filter_map(|w| w.chars().next()).collect();
    firsts.sort_unstable();
    firsts.dedup();
    if firsts.contains(&'*') {
        return; // "name*": every continuation is kept
    }
    // A name that is only the start of a kept one ("pro" of "proc").
    if !done.is_empty() {
        out.push(format!("{prefix}{done}{TREE}"));
    }
    let class: String = firsts.iter().filter(|c| **c != '/').collect();
    out.push(format!("{prefix}{done}[^{class}]*{TREE}"));
    for c in firsts.into_iter().filter(|c| *c != '/') {
        let next: Vec<&str> = rest
            .iter()
            .filter(|w| w.starts_with(c))
            .map(|w| &w[c.len_utf8()..])
            .collect();
        branch(prefix, &format!("{done}{c}"), &next, out);
    }
}

/// "This path, as a directory, or anything below it."
const TREE: &str = "{,/,/**}";

#[cfg(test)]
mod tests {
    use super::*;

    /// AppArmor's globbing for the forms written here: `[^abc]`, `?`, `*` (no `/`), and
    /// a trailing `{,/,/**}` (the path itself or anything below) or `{,/}`.
    fn matches(pat: &str, path: &str) -> bool {
        if let Some(dir) = pat.strip_suffix("{,/}") {
            return matches(dir, path) || path.strip_suffix('/').is_some_and(|p| matches(dir, p));
        }
        let (pat, tree) = match pat.strip_suffix(TREE) {
            Some(p) => (p, true),
            None => (pat, false),
        };
        fn m(p: &[char], s: &[char], tree: bool) -> bool {
            match p.first() {
                None => s.is_empty() || (tree && s[0] == '/'),
                Some('*') => (0..=s.len())
                    .take_while(|&i| i == 0 || s[i - 1] != '/')
                    .any(|i| m(&p[1..], &s[i..], tree)),
                Some('?') => !s.is_empty() && s[0] != '/' && m(&p[1..], &s[1..], tree),
                Some('[') => {
                    let end = p.iter().position(|c| *c == ']').expect("closed class");
                    let set = &p[2..end];
                    !s.is_empty()
                        && s[0] != '/'
                        && !set.contains(&s[0])
                        && m(&p[end + 1..], &s[1..], tree)
                }
                Some(c) => s.first() == Some(c) && m(&p[1..], &s[1..], tree),
            }
        }
        let p: Vec<char> = pat.chars().collect();
        let s: Vec<char> = path.chars().collect();
        m(&p, &s, tree)
    }

    /// Some pattern matches `path`.
    fn denied(pats: &[String], path: &str) -> bool {
        pats.iter().any(|p| matches(p, path))
    }

    #[test]
    fn proc_sys_keeps_net_and_the_namespaced_kernel_knobs() {
        let pats = deny_all_but("/proc/", PROC_WRITABLE);
        let unit = deny_all_but("/run/systemd/unit-root/proc/", PROC_WRITABLE);
        assert!(denied(
            &unit,
            "/run/systemd/unit-root/proc/sys/kernel/panic"
        ));
        for kept in [
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/hostname",
            "/proc/sys/kernel/domainname",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/kernel/msgmni",
            "/proc/sys/kernel/sem",
            "/proc/self/oom_score_adj",
            "/proc/thread-self/attr/exec",
            "/proc/1/oom_score_adj",
            "/proc/4242/uid_map",
        ] {
            assert!(!denied(&pats, kept), "{kept} denied by {pats:#?}");
        }
        for host in [
            "/proc/sys/kernel/panic",
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/kernel/hostnamex",
            "/proc/sys/vm/drop_caches",
            "/proc/sys/fs/binfmt_misc/register",
            "/proc/sys/netx",
            "/proc/sys/kernel/sysrq",
            "/proc/sysrq-trigger",
            "/proc/irq/1/smp_affinity",
            "/proc/fs/nfsd/threads",
            "/proc/sys",
            "/proc/selfish",
        ] {
            assert!(denied(&pats, host), "{host} not denied by {pats:#?}");
        }
    }

    #[test]
    fn sys_keeps_cgroups_and_network_devices() {
        let pats = deny_all_but("/sys/", SYS_WRITABLE);
        for kept in [
            "/sys/fs/cgroup/memory/memory.max",
            "/sys/class/net/eth0/mtu",
            "/sys/devices/virtual/net/eth0/mtu",
        ] {
            assert!(!denied(&pats, kept), "{kept}");
        }
        for host in [
            "/sys/kernel/mm/transparent_hugepage/enabled",
            "/sys/power/state",
            "/sys/class/block/sda",
            "/sys/devices/system/cpu/cpu1/online",
            "/sys/fs/ext4/sda1/errors_count",
            "/sys/module/apparmor/parameters/enabled",
        ] {
            assert!(denied(&pats, host), "{host}");
        }
    }

    #[test]
    fn nothing_of_proc_or_sys_may_land_where_writes_are_allowed() {
        let places = writable_places();
        for writable in [
            "/mnt/x",
            "/tmp/p",
            "/procfoo",
            "/proc/sys/net/ipv4",
            "/proc/sys/kernel/shmmax",
            "/sys/fs/cgroup/x",
            "/sys/class/net/eth0",
        ] {
            assert!(denied(&places, writable), "{writable} not covered");
        }
        for kept in [
            "/proc",
            "/proc/sys",
            "/proc/sys/kernel/panic",
            "/sys",
            "/sys/kernel",
            "/run/systemd/unit-root/proc",
            "/run/systemd/unit-root/proc/sys/kernel/panic",
        ] {
            assert!(!denied(&places, kept), "{kept} covered");
        }
        // The directories on the way to a proc place, and names that start like one.
        for gap in [
            "/pro",
            "/p",
            "/run",
            "/run/",
            "/run/systemd",
            "/run/systemd/unit-root",
            "/run/systemd/unit-root/pro",
            "/run/systemd/unit-rootx",
        ] {
            assert!(denied(&places, gap), "{gap} not covered");
        }
    }

    #[test]
    fn only_the_containers_own_knobs_may_be_bound_onto_writable_places() {
        let sources = foreign_sources();
        for host in [
            "/proc",
            "/proc/",
            "/proc/sys",
            "/proc/sys/kernel/panic",
            "/proc/sysrq-trigger",
            "/proc/1/root",
            "/sys/kernel/mm",
            "/run/systemd/unit-root/proc/sys/kernel/core_pattern",
        ] {
            assert!(denied(&sources, host), "{host} may be bound");
        }
        for own in [
            "/proc/sys/kernel/domainname",
            "/run/systemd/unit-root/proc/sys/kernel/hostname",
            "/proc/sys/net/ipv4",
            "/sys/fs/cgroup",
        ] {
            assert!(!denied(&sources, own), "{own} may not be bound");
        }
    }

    #[test]
    fn what_may_be_bound_may_be_written() {
        assert!(PROC_BINDABLE.iter().all(|b| PROC_WRITABLE.contains(b)));
    }

    #[test]
    fn the_directories_above_proc_and_sys_are_sources_too() {
        let a = ancestors();
        assert_eq!(
            a,
            [
                "/",
                "/run{,/}",
                "/run/systemd{,/}",
                "/run/systemd/unit-root{,/}",
                "/run/systemd/mount-rootfs{,/}"
            ]
        );
        // systemd's recursive bind of / for a service stays possible (systemd 257 was
        // refused it under mount-rootfs before that had rules of its own).
        for u in UNIT_ROOTS {
            assert!(writable_places().iter().any(|w| w == u), "{u}");
        }
    }

    #[test]
    fn superblock_remounts_are_every_flag_combination() {
        let v = superblock_remounts();
        assert_eq!(v.len(), 16);
        assert!(v.contains(&"  deny mount options=(ro, remount),\n".to_string()));
        let all = "  deny mount options=(ro, remount, nosuid, nodev, noexec, silent),\n";
        assert!(v.contains(&all.to_string()));
        assert!(!v.iter().any(|r| r.contains("bind")));
    }

    #[test]
    fn the_profile_is_named_and_closed() {
        let t = text("rlxc-test");
        assert!(t.starts_with("profile rlxc-test flags=(attach_disconnected,mediate_deleted) {\n"));
        assert!(t.ends_with("}\n"));
        assert!(t.contains("deny mount fstype=devpts,"));
    }

    /// The parser itself takes the profile (the VM's kernel loads it; here only the
    /// parser runs): a rule too long for its lexer failed every start there.
    #[test]
    fn apparmor_parser_compiles_the_profile() {
        let t = text("rlxc-test");
        assert!(t.lines().all(|l| l.len() < 16 * 1024 - 1024));
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("profile");
        std::fs::write(&f, &t).unwrap();
        let parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("apparmor_parser is missing: packaging/setup.sh --deps installs apparmor");
        let out = std::process::Command::new(parser)
            .args(["-Q", "-K", "-T"])
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
