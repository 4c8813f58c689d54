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
const BPF_RET_K: u16 = 0x06;

/// (arch, syscall numbers) pairs for this build's native and compat ABIs, in the order
/// kexec_load, kexec_file_load, open_by_handle_at, init_module, finit_module, delete_module.
fn tables() -> Vec<(u32, Vec<u32>)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            (AUDIT_ARCH_X86_64, vec![246, 320, 304, 175, 313, 176]),
            // i386 compat (int 0x80 from a 64-bit process, or 32-bit binaries).
            (AUDIT_ARCH_I386, vec![283, 342, 128, 350, 129]),
        ]
    }
    #[cfg(target_arch = "aarch64")]
    {
        vec![(AUDIT_ARCH_AARCH64, vec![104, 294, 265, 105, 273, 106])]
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Vec::new()
    }
}

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program.
pub fn program() -> Vec<libc::sock_filter> {
    let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
    let mut p = vec![stmt(BPF_LD_W_ABS, 4)]; // seccomp_data.arch
    let tables = tables();
    // Each arch block: ld nr; [x32 check]; one jeq per syscall; ret allow.
    let block_len = |arch: u32, n: usize| 1 + usize::from(arch == AUDIT_ARCH_X86_64) + n + 1;
    let mut blocks = Vec::new();
    for (arch, nrs) in &tables {
        let mut b = vec![stmt(BPF_LD_W_ABS, 0)]; // seccomp_data.nr
        let n = nrs.len();
        let len = block_len(*arch, n);
        if *arch == AUDIT_ARCH_X86_64 {
            // x32 calls carry bit 30; deny them wholesale (jump to the shared deny).
            b.push(jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 0));
        }
        for nr in nrs {
            b.push(jump(BPF_JEQ_K, *nr, 0, 0));
        }
        b.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
        debug_assert_eq!(b.len(), len);
        blocks.push(b);
    }
    // Dispatch on arch: one jeq per block, then allow for anything else.
    let dispatch = tables.len();
    let mut offset_to_block = Vec::new();
    let mut at = dispatch + 1; // after the jeqs and the fallback ret
    for b in &blocks {
        offset_to_block.push(at);
        at += b.len();
    }
    let deny_at = at;
    for (i, (arch, _)) in tables.iter().enumerate() {
        let here = i; // index within the dispatch section
        let jt = offset_to_block[i] - here - 1;
        p.push(jump(BPF_JEQ_K, *arch, jt as u8, 0));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    // Fill in jumps to the deny instruction inside each block.
    for (bi, b) in blocks.iter_mut().enumerate() {
        let start = offset_to_block[bi];
        for (j, ins) in b.iter_mut().enumerate() {
            if ins.code == BPF_JEQ_K || ins.code == BPF_JGE_K {
                let pos = start + j;
                ins.jt = (deny_at - pos - 1) as u8;
            }
        }
    }
    // Indices above count from after the first load.
    let mut out = Vec::with_capacity(1 + at + 1);
    out.push(p.remove(0));
    out.extend(p);
    for b in blocks {
        out.extend(b);
    }
    out.push(stmt(BPF_RET_K, deny));
    out
}

/// Install the filter for this process and its descendants.
pub fn install() -> io::Result<()> {
    let prog = program();
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
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run the BPF program on (arch, nr) like the kernel would.
    fn eval(p: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            match i.code {
                BPF_LD_W_ABS => acc = if i.k == 4 { arch } else { nr },
                BPF_JEQ_K => {
                    pc += usize::from(if acc == i.k { i.jt } else { i.jf });
                }
                BPF_JGE_K => {
                    pc += usize::from(if acc >= i.k { i.jt } else { i.jf });
                }
                BPF_RET_K => return i.k,
                c => panic!("unknown op {c}"),
            }
            pc += 1;
        }
    }

    #[test]
    fn denies_the_list_and_allows_the_rest() {
        let p = program();
        let deny = SECCOMP_RET_ERRNO | libc::EPERM as u32;
        for (arch, nrs) in tables() {
            for nr in nrs {
                assert_eq!(eval(&p, arch, nr), deny, "arch {arch:x} nr {nr}");
            }
            for nr in [0, 1, 2, 59, 60, 231] {
                assert_eq!(
                    eval(&p, arch, nr),
                    SECCOMP_RET_ALLOW,
                    "arch {arch:x} nr {nr}"
                );
            }
        }
        #[cfg(target_arch = "x86_64")]
        assert_eq!(eval(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1), deny);
        assert_eq!(eval(&p, 0x1234, 246), SECCOMP_RET_ALLOW);
    }
}
