//! Credentials for user namespaces: becoming a namespace's root, and acting from the
//! host with an unprivileged container's file-system ids (so what is made through its
//! idmapped mounts is owned as if its root had made it).

use std::io;

use nix::unistd::{Gid, Uid};

/// capget/capset's header version 3 (two 32-bit words per set).
const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Run `f` with file-system ids `uid` and `gid` (setfsuid: the other ids stay, so the
/// process keeps its rights over its own resources), then restore them. Leaving fsuid 0
/// clears the file capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, ...) from the effective set;
/// they are raised again from the permitted set: `f` acts with root's powers but makes
/// files as `uid`. Per thread: the caller must be single-threaded or mind the thread.
pub fn with_fs_ids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    let old_gid = set_fsgid(gid)?;
    let old_uid = match set_fsuid(uid) {
        Ok(u) => u,
        Err(e) => {
            let _ = set_fsgid(old_gid);
            return Err(e);
        }
    };
    let raised = raise_effective();
    let out = raised.map(|_| f());
    let back = set_fsuid(old_uid)
        .and_then(|_| set_fsgid(old_gid))
        .and_then(|_| raise_effective());
    let out = out?;
    back?;
    Ok(out)
}

fn set_fsuid(uid: u32) -> io::Result<u32> {
    set_fs_id("uid", uid, libc::setfsuid)
}

fn set_fsgid(gid: u32) -> io::Result<u32> {
    set_fs_id("gid", gid, libc::setfsgid)
}

/// setfsuid and setfsgid report no error: they return the previous id whatever
/// happened, so a second call tells whether the first took.
fn set_fs_id(
    what: &str,
    id: u32,
    call: unsafe extern "C" fn(u32) -> libc::c_int,
) -> io::Result<u32> {
    // SAFETY: setfsuid/setfsgid take an integer and change only this thread's
    // credentials.
    let old = unsafe { call(id) } as u32;
    // SAFETY: as above; setting the same id again is a no-op that returns the current one.
    let now = unsafe { call(id) } as u32;
    if now != id {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("cannot take file-system {what} {id}"),
        ));
    }
    Ok(old)
}

/// Effective capabilities := permitted ones, for this thread.
fn raise_effective() -> io::Result<()> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: header and data are live, correctly laid out (linux/capability.h, version
    // 3 takes two data structs) and outlive the call.
    let r = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    super::check(r)?;
    for d in &mut data {
        d.effective = d.permitted;
    }
    // SAFETY: as above; capset only reads them.
    let r = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    super::check(r)
}

/// In a user namespace just joined or made (with its maps written): become its root,
/// with no supplementary groups of the host's.
pub fn become_root() -> io::Result<()> {
    become_ids(0, 0, &[])
}

/// Take `uid` and `gid` for real, effective and saved ids, with `groups` the only
/// supplementary ones. Not dumpable afterwards, until the exec.
pub fn become_ids(uid: u32, gid: u32, groups: &[u32]) -> io::Result<()> {
    let g = Gid::from_raw(gid);
    let u = Uid::from_raw(uid);
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setresgid(g, g, g)?;
    nix::unistd::setgroups(&groups)?;
    nix::unistd::setresuid(u, u, u)?;
    // A change of ids sets dumpability to fs.suid_dumpable: at 1, rlxc's code still
    // running in a container would be open to it again (ptrace, /proc/PID/mem, and exe:
    // the host's rlxc binary) whatever was set before. The exec decides for the command.
    nix::sys::prctl::set_dumpable(false)?;
    Ok(())
}
