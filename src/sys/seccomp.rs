//! A small seccomp deny-list, as LXC's common.seccomp: the syscalls that load kernel
//! code or bypass file permissions get EPERM, everything else is allowed. Built by hand
//! because the usual crates also set no_new_privs, which would break setuid binaries
//! (su, passwd) inside a system container.

use std::io;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
#[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_JSET_K: u16 = 0x45;
const BPF_AND_K: u16 = 0x54;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`: nr, arch, and the low word of args[1] (all the
/// supported ABIs are little-endian).
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;
const DATA_ARG1_LO: u32 = 24;
const DATA_ARG3_LO: u32 = 40;

const MNT_FORCE: u32 = 1;
const MS_RDONLY: u32 = 1;
const MS_REMOUNT: u32 = 32;
const MS_BIND: u32 = 4096;

/// The new mount API (one numbering on every ABI since Linux 5.2): the calls that make
/// a new superblock and attach it (move_mount, fsopen, fsconfig, fsmount) ...
const NEW_SUPERBLOCK_CALLS: &[u32] = &[429, 430, 431, 432];
/// ... and those that clone, reconfigure or change existing mounts (open_tree, fspick,
/// mount_setattr).
const EXISTING_MOUNT_CALLS: &[u32] = &[428, 433, 442];

/// What the new mount API gets. Its calls answered ENOSYS make programs fall back to
/// mount(2), which the AppArmor profile mediates by path and this filter inspects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewMountApi {
    /// A privileged container: ENOSYS for all of it. AppArmor cannot see into
    /// fsopen/fsconfig on the kernels rlxc runs on, and a proc instance outside /proc
    /// would reach the host's kernel knobs.
    NoSuchCall,
    /// An unprivileged container: new superblocks may be made and attached (the kernel
    /// lets a user namespace mount only what it owns, and locked mounts stay locked);
    /// systemd 259 and newer set up service credentials that way only, and ENOSYS there
    /// fails every service that has credentials. Clones and reconfigurations of
    /// existing mounts stay ENOSYS: AppArmor (Debian 12's kernel) judges a move_mount
    /// of a detached clone by a path it cannot resolve, and refuses systemd 257's
    /// sandboxing binds that it allows through mount(2).
    NewSuperblocks,
}

impl NewMountApi {
    /// New superblocks in a user namespace of the container's own, ENOSYS otherwise.
    pub fn for_userns(userns: bool) -> Self {
        if userns {
            NewMountApi::NewSuperblocks
        } else {
            NewMountApi::NoSuchCall
        }
    }

    /// The calls answered ENOSYS.
    fn no_such_calls(self) -> Vec<u32> {
        match self {
            NewMountApi::NoSuchCall => [NEW_SUPERBLOCK_CALLS, EXISTING_MOUNT_CALLS].concat(),
            NewMountApi::NewSuperblocks => EXISTING_MOUNT_CALLS.to_vec(),
        }
    }
}

/// One ABI: its audit arch, the syscalls denied outright (kexec_load, kexec_file_load,
/// open_by_handle_at, init_module, finit_module, delete_module) and umount2, denied
/// with MNT_FORCE (LXC's reject_force_umount: a forced unmount inside the container can
/// abort I/O on file systems the host shares with it).
struct Abi {
    arch: u32,
    deny: &'static [u32],
    umount2: u32,
    /// mount(2): a read-only remount without MS_BIND changes the superblock, which
    /// for the container's root (a bind of the host's file system) is the host's.
    mount: u32,
}

fn tables() -> Vec<Abi> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            Abi {
                arch: AUDIT_ARCH_X86_64,
                deny: &[246, 320, 304, 175, 313, 176],
                umount2: 166,
                mount: 165,
            },
            // i386 compat (int 0x80 from a 64-bit process, or 32-bit binaries).
            Abi {
                arch: AUDIT_ARCH_I386,
                deny: &[283, 342, 128, 350, 129],
                umount2: 52,
                mount: 21,
            },
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![Abi {
            arch: AUDIT_ARCH_AARCH64,
            deny: &[104, 294, 265, 105, 273, 106],
            umount2: 39,
            mount: 40,
        }]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

/// Where a conditional jump goes: the next instruction, or a label placed later.
#[derive(Clone, Copy)]
enum To {
    Next,
    Label(usize),
}

/// A forward-only BPF assembler: jumps name labels, resolved into offsets at the end.
#[derive(Default)]
struct Asm {
    code: Vec<(libc::sock_filter, To, To)>,
    labels: Vec<Option<usize>>,
}

impl Asm {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn stmt(&mut self, code: u16, k: u32) {
        let ins = libc::sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        };
        self.code.push((ins, To::Next, To::Next));
    }
    fn jump(&mut self, code: u16, k: u32, jt: To, jf: To) {
        self.code.push((
            libc::sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            },
            jt,
            jf,
        ));
    }
    fn finish(self) -> Vec<libc::sock_filter> {
        let labels = self.labels;
        let offset = |pos: usize, to: To| -> u8 {
            match to {
                To::Next => 0,
                To::Label(l) => {
                    let at = labels[l].expect("every label is placed");
                    u8::try_from(at - pos - 1).expect("the program is short")
                }
            }
        };
        self.code
            .iter()
            .enumerate()
            .map(|(pos, (ins, jt, jf))| libc::sock_filter {
                jt: offset(pos, *jt),
                jf: offset(pos, *jf),
                ..*ins
            })
            .collect()
    }
}

/// The filter program: per ABI, deny the listed syscalls, a forced umount2 and a
/// read-only superblock remount, answer the new mount API as `new_mount_api` says;
/// allow the rest.
/// Calls of an ABI not listed (32-bit ARM on arm64, say) are denied: their numbers
/// mean other calls, unchecked here.
pub fn program(new_mount_api: NewMountApi) -> Vec<libc::sock_filter> {
    let deny_errno = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    let mut a = Asm::default();
    let deny = a.label();
    let allow = a.label();
    let no_such_call = a.label();
    for abi in tables() {
        let next_abi = a.label();
        let umount2 = a.label();
        let mount = a.label();
        a.stmt(BPF_LD_W_ABS, DATA_ARCH);
        a.jump(BPF_JEQ_K, abi.arch, To::Next, To::Label(next_abi));
        a.stmt(BPF_LD_W_ABS, DATA_NR);
        if abi.arch == AUDIT_ARCH_X86_64 {
            // x32 calls carry bit 30; deny them wholesale.
            a.jump(BPF_JGE_K, X32_SYSCALL_BIT, To::Label(deny), To::Next);
        }
        for nr in abi.deny {
            a.jump(BPF_JEQ_K, *nr, To::Label(deny), To::Next);
        }
        for nr in new_mount_api.no_such_calls() {
            a.jump(BPF_JEQ_K, nr, To::Label(no_such_call), To::Next);
        }
        a.jump(BPF_JEQ_K, abi.umount2, To::Label(umount2), To::Next);
        a.jump(BPF_JEQ_K, abi.mount, To::Label(mount), To::Label(allow));
        a.place(umount2);
        a.stmt(BPF_LD_W_ABS, DATA_ARG1_LO);
        a.jump(BPF_JSET_K, MNT_FORCE, To::Label(deny), To::Label(allow));
        a.place(mount);
        a.stmt(BPF_LD_W_ABS, DATA_ARG3_LO);
        a.stmt(BPF_AND_K, MS_REMOUNT | MS_BIND | MS_RDONLY);
        a.jump(
            BPF_JEQ_K,
            MS_REMOUNT | MS_RDONLY,
            To::Label(deny),
            To::Label(allow),
        );
        a.place(next_abi);
    }
    // No ABI matched: falls through to the deny.
    a.place(deny);
    a.stmt(BPF_RET_K, deny_errno);
    a.place(no_such_call);
    a.stmt(BPF_RET_K, enosys);
    a.place(allow);
    a.stmt(BPF_RET_K, SECCOMP_RET_ALLOW);
    a.finish()
}

/// Install the filter for this process and its descendants.
pub fn install(new_mount_api: NewMountApi) -> io::Result<()> {
    let prog = program(new_mount_api);
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `fprog` points to `prog`, alive for the call; the kernel copies the program.
    // No SECCOMP_FILTER_FLAG_*: plain install, which needs CAP_SYS_ADMIN (held here)
    // instead of no_new_privs.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &fprog as *const libc::sock_fprog,
        )
    };
    super::check(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the BPF program on (arch, nr, args[1]) like the kernel would.
    fn eval(p: &[libc::sock_filter], arch: u32, nr: u32, arg1: u32) -> u32 {
        eval3(p, arch, nr, arg1, 0)
    }

    /// The same with args[3].
    fn eval3(p: &[libc::sock_filter], arch: u32, nr: u32, arg1: u32, arg3: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (jt, jf) = (usize::from(i.jt), usize::from(i.jf));
            match i.code {
                BPF_LD_W_ABS => {
                    acc = match i.k {
                        DATA_ARCH => arch,
                        DATA_NR => nr,
                        DATA_ARG1_LO => arg1,
                        DATA_ARG3_LO => arg3,
                        k => panic!("load at {k}"),
                    }
                }
                BPF_JEQ_K => pc += if acc == i.k { jt } else { jf },
                BPF_JGE_K => pc += if acc >= i.k { jt } else { jf },
                BPF_JSET_K => pc += if acc & i.k != 0 { jt } else { jf },
                BPF_AND_K => acc &= i.k,
                BPF_RET_K => return i.k,
                c => panic!("unknown op {c}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn denies_the_list_and_allows_the_rest() {
        let p = program(NewMountApi::NoSuchCall);
        let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        for abi in tables() {
            for nr in abi.deny {
                assert_eq!(
                    eval(&p, abi.arch, *nr, 0),
                    deny,
                    "arch {:x} nr {nr}",
                    abi.arch
                );
            }
            for nr in [0, 1, 2, 59, 60, 231] {
                assert_eq!(eval(&p, abi.arch, nr, 0), SECCOMP_RET_ALLOW, "nr {nr}");
            }
            // umount2: plain and lazy unmounts are allowed, forced ones are not.
            assert_eq!(eval(&p, abi.arch, abi.umount2, 0), SECCOMP_RET_ALLOW);
            assert_eq!(eval(&p, abi.arch, abi.umount2, 2), SECCOMP_RET_ALLOW);
            assert_eq!(eval(&p, abi.arch, abi.umount2, MNT_FORCE), deny);
            assert_eq!(eval(&p, abi.arch, abi.umount2, MNT_FORCE | 2), deny);
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(eval(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1, 0), deny);
        // Another ABI's numbers mean other calls: refused, not let through.
        assert_eq!(eval(&p, 0x1234, 246, 0), deny);
    }

    #[test]
    fn superblock_remounts_and_the_new_mount_api() {
        let p = program(NewMountApi::NoSuchCall);
        let in_userns = program(NewMountApi::NewSuperblocks);
        let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        for abi in tables() {
            let m = |flags| eval3(&p, abi.arch, abi.mount, 0, flags);
            assert_eq!(m(MS_REMOUNT | MS_RDONLY), deny);
            assert_eq!(
                m(MS_REMOUNT | MS_RDONLY | 2 | 1024),
                deny,
                "with nosuid, sync…"
            );
            assert_eq!(m(MS_REMOUNT | MS_BIND | MS_RDONLY), SECCOMP_RET_ALLOW);
            assert_eq!(m(MS_REMOUNT), SECCOMP_RET_ALLOW);
            assert_eq!(m(MS_BIND), SECCOMP_RET_ALLOW);
            assert_eq!(m(0), SECCOMP_RET_ALLOW);
            for nr in NEW_SUPERBLOCK_CALLS.iter().chain(EXISTING_MOUNT_CALLS) {
                assert_eq!(eval(&p, abi.arch, *nr, 0), enosys, "nr {nr}");
            }
            // In a user namespace: new superblocks only; the rest as for the privileged.
            for nr in NEW_SUPERBLOCK_CALLS {
                assert_eq!(eval(&in_userns, abi.arch, *nr, 0), SECCOMP_RET_ALLOW);
            }
            for nr in EXISTING_MOUNT_CALLS {
                assert_eq!(eval(&in_userns, abi.arch, *nr, 0), enosys, "nr {nr}");
            }
            for nr in abi.deny {
                assert_eq!(eval(&in_userns, abi.arch, *nr, 0), deny, "nr {nr}");
            }
            assert_eq!(
                eval3(&in_userns, abi.arch, abi.mount, 0, MS_REMOUNT | MS_RDONLY),
                deny
            );
            assert_eq!(eval(&in_userns, abi.arch, abi.umount2, MNT_FORCE), deny);
        }
    }
}
