//! The cgroup v2 device filter: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built
//! from the same allow-list that v1 writes to devices.allow, attached to the container's
//! cgroup with BPF_F_ALLOW_MULTI so that a systemd inside can narrow it for its units but
//! never widen it. Assembled by hand, as seccomp.rs is: a few dozen instructions do not
//! justify libbpf.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_F_REPLACE: u32 = 4;

// struct bpf_cgroup_dev_ctx { u32 access_type /* access << 16 | type */; u32 major; u32 minor; }
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Opcodes (class | op | source).
const LDX_MEM_W: u8 = 0x61;
const ALU64_AND_K: u8 = 0x57;
const ALU64_RSH_K: u8 = 0x77;
const ALU64_MOV_K: u8 = 0xb7;
const ALU64_MOV_X: u8 = 0xbf;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;

/// One allow rule, as in devices.allow: `c 1:3 rwm`, `c 136:* rwm`, `b *:* m`, `a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    /// DEV_CHAR or DEV_BLOCK; None for `a` (both).
    kind: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
}

impl DeviceRule {
    pub fn parse(s: &str) -> Option<Self> {
        let mut f = s.split_whitespace();
        let kind = match f.next()? {
            "a" => {
                return Some(DeviceRule {
                    kind: None,
                    major: None,
                    minor: None,
                    access: 7,
                })
            }
            "c" => Some(DEV_CHAR),
            "b" => Some(DEV_BLOCK),
            _ => return None,
        };
        let (maj, min) = f.next()?.split_once(':')?;
        let num = |x: &str| -> Option<Option<u32>> {
            if x == "*" {
                Some(None)
            } else {
                x.parse().ok().map(Some)
            }
        };
        let mut access = 0;
        for c in f.next()?.chars() {
            access |= match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return None,
            };
        }
        if f.next().is_some() {
            return None;
        }
        Some(DeviceRule {
            kind,
            major: num(maj)?,
            minor: num(min)?,
            access,
        })
    }
}

/// One eBPF instruction (struct bpf_insn).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0xf),
        off,
        imm,
    }
}

/// The program: 1 (allow) when some rule matches the access, else 0 (EPERM).
pub fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    // r2 = type, r3 = access, r4 = major, r5 = minor; r1 is scratch afterwards.
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for r in rules {
        // Each test jumps past the end of this rule's block when it fails.
        let mut block: Vec<Option<Insn>> = Vec::new();
        if let Some(k) = r.kind {
            block.push(None);
            block.push(Some(insn(JMP_JNE_K, 2, 0, 0, k)));
        }
        // Asked-for access bits outside the rule's: no match.
        block.push(Some(insn(ALU64_MOV_X, 1, 3, 0, 0)));
        block.push(Some(insn(ALU64_AND_K, 1, 0, 0, !r.access & 7)));
        block.push(Some(insn(JMP_JNE_K, 1, 0, 0, 0)));
        if let Some(m) = r.major {
            block.push(Some(insn(JMP_JNE_K, 4, 0, 0, m as i32)));
        }
        if let Some(m) = r.minor {
            block.push(Some(insn(JMP_JNE_K, 5, 0, 0, m as i32)));
        }
        block.push(Some(insn(ALU64_MOV_K, 0, 0, 0, 1)));
        block.push(Some(insn(JMP_EXIT, 0, 0, 0, 0)));
        let block: Vec<Insn> = block.into_iter().flatten().collect();
        let len = block.len();
        for (i, mut ins) in block.into_iter().enumerate() {
            if ins.code == JMP_JNE_K {
                ins.off = (len - i - 1) as i16;
            }
            p.push(ins);
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn load(prog: &[Insn]) -> io::Result<OwnedFd> {
    // Without a log the verifier is quick; only a refused program is loaded again with
    // one, for the message.
    load_with_log(prog, false).map_err(|e| load_with_log(prog, true).err().unwrap_or(e))
}

fn load_with_log(prog: &[Insn], with_log: bool) -> io::Result<OwnedFd> {
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; if with_log { 16 * 1024 } else { 0 }];
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"rlxc_dev");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: with_log as u32,
        log_size: log.len() as u32,
        log_buf: if with_log { log.as_mut_ptr() as u64 } else { 0 },
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: attr points at live buffers (program, license, log) for the whole call; the
    // kernel only writes into `log`, within log_size.
    let fd = unsafe { bpf(BPF_PROG_LOAD, &attr) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        let verifier = String::from_utf8_lossy(&log);
        let verifier = verifier.trim_end_matches('\0').trim();
        if verifier.is_empty() {
            return Err(e);
        }
        return Err(io::Error::new(
            e.kind(),
            format!("{e}; verifier: {verifier}"),
        ));
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// bpf(2) with `attr` and its size.
///
/// # Safety
/// Every pointer inside `attr` must be valid for what `cmd` reads or writes through it.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &T) -> libc::c_long {
    // SAFETY: the caller vouches for the pointers in attr; attr itself is a live reference
    // and its exact size is passed.
    unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *const T,
            std::mem::size_of::<T>(),
        )
    }
}

/// Attach `prog` to `cgroup`, in place of `old` (atomically, BPF_F_REPLACE) if given.
fn attach(prog: &OwnedFd, cgroup: &Path, old: Option<&OwnedFd>) -> io::Result<()> {
    let dir = std::fs::File::open(cgroup)?;
    let attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI | old.map_or(0, |_| BPF_F_REPLACE),
        replace_bpf_fd: old.map_or(0, |o| o.as_raw_fd() as u32),
    };
    // SAFETY: attr holds only numbers and two fds that are open across the call.
    super::check(unsafe { bpf(BPF_PROG_ATTACH, &attr) })
}

/// Allow only `rules` for every process in the cgroup v2 directory `cgroup` and below.
/// The attachment lives as long as the cgroup; the returned program is what
/// `replace_devices` replaces (a device added while the container runs).
pub fn restrict_devices(cgroup: &Path, rules: &[DeviceRule]) -> io::Result<OwnedFd> {
    let prog = load(&program(rules))?;
    attach(&prog, cgroup, None)?;
    Ok(prog)
}

/// Put a program allowing `rules` in the place of `old` on `cgroup` in one step (a
/// second program beside it would only narrow: every attached one must allow).
pub fn replace_devices(cgroup: &Path, old: &OwnedFd, rules: &[DeviceRule]) -> io::Result<OwnedFd> {
    let prog = load(&program(rules))?;
    attach(&prog, cgroup, Some(old))?;
    Ok(prog)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_devices_allow_lines() {
        assert_eq!(
            DeviceRule::parse("c 136:* rwm"),
            Some(DeviceRule {
                kind: Some(DEV_CHAR),
                major: Some(136),
                minor: None,
                access: 7
            })
        );
        assert_eq!(
            DeviceRule::parse("b *:* m"),
            Some(DeviceRule {
                kind: Some(DEV_BLOCK),
                major: None,
                minor: None,
                access: 1
            })
        );
        assert!(DeviceRule::parse("c 1:3 rwx").is_none());
        assert!(DeviceRule::parse("x 1:3 r").is_none());
        assert!(DeviceRule::parse("c 1-3 r").is_none());
    }

    #[test]
    fn failed_tests_jump_to_the_next_rule() {
        let rules = [DeviceRule::parse("c 1:3 rw").unwrap()];
        let p = program(&rules);
        // 6 loads, then: jne type; mov; and; jne access; jne major; jne minor; mov 1; exit.
        assert_eq!(p.len(), 6 + 8 + 2);
        let block = &p[6..14];
        for (i, ins) in block.iter().enumerate() {
            if ins.code == JMP_JNE_K {
                assert_eq!(
                    i as i16 + 1 + ins.off,
                    8,
                    "jump at {i} lands after the block"
                );
            }
        }
        assert_eq!(block[2].imm, ACC_MKNOD, "only mknod is outside rw");
        assert_eq!(p[p.len() - 2].imm, 0, "default deny");
    }

    #[test]
    fn a_refused_program_reports_the_verifier() {
        // No exit instruction: the verifier refuses it and says why.
        let e = load(&[insn(ALU64_MOV_K, 0, 0, 0, 0)]).expect_err("refused");
        assert!(e.to_string().contains("verifier:"), "{e}");
    }

    /// The kernel enforces it: in a cgroup2 directory with the filter, /dev/null and
    /// /dev/full open and a mknod'ed /dev/zero (1:5, not on this list) does not. Root
    /// and outside any v1 devices cgroup, so only the program can refuse.
    #[test]
    fn kernel_enforces_the_filter() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let layout = crate::cgroup::parse_mountinfo(&mountinfo);
        let v2 = layout
            .hierarchies
            .iter()
            .find(|h| h.v2)
            .expect("a cgroup2 mount (pure v2, or the unified one of a hybrid host)");
        let cg = v2
            .mountpoint
            .join(format!("rlxc-test-bpf-{}", std::process::id()));
        std::fs::create_dir(&cg).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let rules: Vec<_> = ["c 1:3 rwm", "c 1:7 rw", "c *:* m"]
            .iter()
            .map(|r| DeviceRule::parse(r).unwrap())
            .collect();
        let res = restrict_devices(&cg, &rules);
        let script = format!(
            "echo $$ > {procs}
             head -c 1 /dev/full >/dev/null && echo full-ok
             mknod {node} c 1 5 && echo mknod-ok
             head -c 1 {node} >/dev/null 2>&1 || echo zero-denied
             echo x > /dev/full 2>/dev/null; mknod {node}2 c 1 7 && echo mknod2-ok",
            procs = cg.join("cgroup.procs").display(),
            node = tmp.path().join("zero").display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output();
        let _ = std::fs::remove_dir(&cg);
        res.expect("attach the device filter");
        let out = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
        assert_eq!(
            out.lines().collect::<Vec<_>>(),
            ["full-ok", "mknod-ok", "zero-denied", "mknod2-ok"],
            "{out}"
        );
    }
}
