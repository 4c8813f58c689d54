//! Sealed in-memory copies of this program and the shared objects it runs on, for a
//! process that stays inside a container (rlxc-execute's init): executed from them, it
//! maps no file of the host's, so /proc/PID/exe and /proc/PID/map_files lead only to
//! copies nobody can write (runc's CVE-2019-5736 class).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// linux/memfd.h: executable memfds must say so where vm.memfd_noexec is set (6.3+).
const MFD_EXEC: libc::c_uint = 0x10;
/// linux/fcntl.h: no chmod of the exec bits (6.3+).
const F_SEAL_EXEC: libc::c_int = 0x20;

/// A sealed copy of `src` named `name` (shown as `/memfd:NAME` in /proc): no write,
/// resize or new seal will ever be allowed on it.
pub fn sealed_copy(src: &mut std::fs::File, name: &str) -> io::Result<OwnedFd> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))?;
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    let fd = memfd_create(&cname, flags | MFD_EXEC).or_else(|e| {
        // Kernels before 6.3 know no MFD_EXEC: every memfd is executable there.
        if e.raw_os_error() == Some(libc::EINVAL) {
            memfd_create(&cname, flags)
        } else {
            Err(e)
        }
    })?;
    let mut copy = std::fs::File::from(fd);
    // In the kernel where it can (copy_file_range, sendfile).
    io::copy(src, &mut copy)?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    add_seals(&copy, seals | F_SEAL_EXEC).or_else(|_| add_seals(&copy, seals))?;
    Ok(copy.into())
}

fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is NUL-terminated and lives across the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn add_seals(f: &std::fs::File, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: F_ADD_SEALS takes an integer; the descriptor is live for the call.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Let `fd` survive an exec.
pub fn keep_on_exec(fd: BorrowedFd<'_>) -> io::Result<()> {
    nix::fcntl::fcntl(
        fd,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map(|_| ())
    .map_err(io::Error::from)
}

/// The shared objects this process runs on, in the dynamic linker's search order.
#[derive(Debug, Default)]
pub struct Loaded {
    /// The dynamic linker (the program's PT_INTERP); None for a static program.
    pub interp: Option<PathBuf>,
    /// The libraries, the linker excluded.
    pub libs: Vec<PathBuf>,
}

/// What `dl_iterate_phdr` reports, in its (link map) order.
pub fn loaded_objects() -> Loaded {
    let mut seen: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` the loader passes for the call
    // and pushes owned copies into the Vec that `data` points to, which outlives the
    // call; it returns 0 to go on.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), (&mut seen as *mut Vec<_>).cast());
    }
    let mut out = Loaded::default();
    let mut objects = seen.into_iter();
    // The program comes first; its PT_INTERP names the linker.
    if let Some((_, interp)) = objects.next() {
        out.interp = interp.map(|p| PathBuf::from(OsStr::from_bytes(&p)));
    }
    for (name, _) in objects {
        let path = PathBuf::from(OsStr::from_bytes(&name));
        // The vDSO has a name but no file.
        if path.is_absolute() && Some(&path) != out.interp.as_ref() {
            out.libs.push(path);
        }
    }
    out
}

unsafe extern "C" fn collect(
    info: *mut libc::dl_phdr_info,
    _size: libc::size_t,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: `data` is the Vec passed by `loaded_objects`; `info` is valid for this
    // call, its name NUL-terminated (or null) and its program headers `dlpi_phnum` long;
    // a PT_INTERP segment holds a NUL-terminated path at dlpi_addr + p_vaddr, mapped.
    unsafe {
        let seen = &mut *(data as *mut Vec<(Vec<u8>, Option<Vec<u8>>)>);
        let info = &*info;
        let name = if info.dlpi_name.is_null() {
            Vec::new()
        } else {
            CStr::from_ptr(info.dlpi_name).to_bytes().to_vec()
        };
        let mut interp = None;
        for i in 0..usize::from(info.dlpi_phnum) {
            let ph = &*info.dlpi_phdr.add(i);
            if ph.p_type == libc::PT_INTERP {
                let at = (info.dlpi_addr as usize + ph.p_vaddr as usize) as *const libc::c_char;
                interp = Some(CStr::from_ptr(at).to_bytes().to_vec());
            }
        }
        seen.push((name, interp));
    }
    0
}
