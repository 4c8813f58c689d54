//! Sealed in-memory copies of this program and the shared objects it runs on, for a
//! process that stays inside a container (rlxc-execute's init): executed from them, it
//! maps no file of the host's, so /proc/PID/exe and /proc/PID/map_files lead only to
//! copies nobody can write (runc's CVE-2019-5736 class).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
    pub interp: Option<Object>,
    /// The libraries, the linker excluded.
    pub libs: Vec<Object>,
}

/// One shared object as the linker loaded it.
#[derive(Debug, Clone)]
pub struct Object {
    /// The path the linker named it by, for messages: the file there now may not be it.
    pub path: PathBuf,
    /// An address in its first mapped segment, where its mapping is found.
    pub addr: usize,
}

/// What `dl_iterate_phdr` reports, in its (link map) order.
pub fn loaded_objects() -> Loaded {
    let mut seen: Vec<Seen> = Vec::new();
    // SAFETY: the callback only reads the `dl_phdr_info` the loader passes for the call
    // and pushes owned copies into the Vec that `data` points to, which outlives the
    // call; it returns 0 to go on.
    unsafe {
        libc::dl_iterate_phdr(Some(collect), (&mut seen as *mut Vec<Seen>).cast());
    }
    let mut out = Loaded::default();
    let mut objects = seen.into_iter();
    // The program comes first; its PT_INTERP names the linker.
    let interp = objects.next().and_then(|o| o.interp);
    let interp = interp.map(|i| PathBuf::from(OsStr::from_bytes(&i)));
    for o in objects {
        let path = PathBuf::from(OsStr::from_bytes(&o.name));
        // The vDSO has a name but no file.
        let (true, Some(addr)) = (path.is_absolute(), o.addr) else {
            continue;
        };
        if Some(&path) == interp.as_ref() {
            out.interp = Some(Object { path, addr });
        } else {
            out.libs.push(Object { path, addr });
        }
    }
    if let (None, Some(path)) = (&out.interp, interp) {
        // Not listed under its PT_INTERP name: the kernel says where it loaded it.
        // SAFETY: getauxval only reads this process's auxiliary vector.
        let addr = unsafe { libc::getauxval(libc::AT_BASE) } as usize;
        out.interp = Some(Object { path, addr });
    }
    out
}

/// Open the file mapped at `obj.addr` in this process, to read what runs here rather
/// than what its path holds now (a package upgrade replaces libraries by rename): the
/// mapping's own file through /proc/self/map_files, or, where that is not allowed
/// (it takes CAP_SYS_ADMIN), the path if it is still the mapped file (same inode).
/// Otherwise an error saying the file was replaced. `maps` is /proc/self/maps, read
/// once by the caller for all its objects.
pub fn open_mapped(maps: &str, obj: &Object) -> io::Result<std::fs::File> {
    let m = Mapping::containing(maps, obj.addr).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("no file is mapped at {:#x}", obj.addr),
        )
    })?;
    let range = format!("{:x}-{:x}", m.start, m.end);
    if let Ok(f) = std::fs::File::open(format!("/proc/self/map_files/{range}")) {
        return Ok(f);
    }
    open_if_mapped(&obj.path, &m)
}

/// `path` opened if it is still the file of the mapping `m`. The inode decides: a file
/// renamed over it (what an upgrade does) has a new one while the mapping holds the old.
/// The device cannot: btrfs shows its anonymous device in maps and a subvolume's in stat.
fn open_if_mapped(path: &Path, m: &Mapping) -> io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    let st = nix::sys::stat::fstat(&f)?;
    if !same_file(st.st_ino, m) {
        return Err(io::Error::other(
            "the file there is no longer the one rlxc runs on: it was replaced after rlxc \
             started (a package upgrade?); run the command again",
        ));
    }
    Ok(f)
}

/// Whether a file of inode `ino` is the mapped one (see `open_if_mapped`).
fn same_file(ino: u64, m: &Mapping) -> bool {
    ino == m.ino
}

/// A line of /proc/PID/maps, the fields `open_mapped` needs.
#[derive(Debug, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    /// Major and minor device number.
    dev: (u64, u64),
    ino: u64,
}

impl Mapping {
    /// The file mapping holding `addr`, if one does.
    fn containing(maps: &str, addr: usize) -> Option<Mapping> {
        maps.lines().find_map(|l| {
            let mut f = l.split_ascii_whitespace();
            let (start, end) = f.next()?.split_once('-')?;
            let hex = |s: &str| usize::from_str_radix(s, 16).ok();
            let (start, end) = (hex(start)?, hex(end)?);
            if !(start..end).contains(&addr) {
                return None;
            }
            let (major, minor) = f.nth(2)?.split_once(':')?;
            let hex = |s: &str| u64::from_str_radix(s, 16).ok();
            let ino = f.next()?.parse().ok().filter(|i| *i != 0)?;
            Some(Mapping {
                start,
                end,
                dev: (hex(major)?, hex(minor)?),
                ino,
            })
        })
    }
}

/// One object `collect` saw: its name, the PT_INTERP it asks for, and an address in
/// its first PT_LOAD segment.
struct Seen {
    name: Vec<u8>,
    interp: Option<Vec<u8>>,
    addr: Option<usize>,
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
        let seen = &mut *(data as *mut Vec<Seen>);
        let info = &*info;
        let name = if info.dlpi_name.is_null() {
            Vec::new()
        } else {
            CStr::from_ptr(info.dlpi_name).to_bytes().to_vec()
        };
        let (mut interp, mut addr) = (None, None);
        for i in 0..usize::from(info.dlpi_phnum) {
            let ph = &*info.dlpi_phdr.add(i);
            let at = info.dlpi_addr as usize + ph.p_vaddr as usize;
            if ph.p_type == libc::PT_INTERP {
                interp = Some(
                    CStr::from_ptr(at as *const libc::c_char)
                        .to_bytes()
                        .to_vec(),
                );
            }
            if ph.p_type == libc::PT_LOAD && addr.is_none() {
                addr = Some(at);
            }
        }
        seen.push(Seen { name, interp, addr });
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn maps() -> String {
        std::fs::read_to_string("/proc/self/maps").unwrap()
    }

    #[test]
    fn the_mapping_of_an_address_is_found_in_maps() {
        let text = "\
55d0b000-55d0d000 r--p 00000000 fe:01 12 /usr/bin/x
7f0000000000-7f0000002000 r-xp 00002000 103:0a 4711 /usr/lib/libz.so.1
7f0000002000-7f0000003000 rw-p 00000000 00:00 0
";
        let m = Mapping::containing(text, 0x7f0000001fff).unwrap();
        assert_eq!((m.start, m.end), (0x7f0000000000, 0x7f0000002000));
        assert_eq!((m.dev, m.ino), ((0x103, 0xa), 4711));
        assert_eq!(Mapping::containing(text, 0x55d0b000).unwrap().ino, 12);
        // Anonymous memory, and nothing at all, are no file's.
        assert!(Mapping::containing(text, 0x7f0000002000).is_none());
        assert!(Mapping::containing(text, 0x1000).is_none());
    }

    #[test]
    fn the_libraries_open_as_the_files_this_process_maps() {
        let loaded = loaded_objects();
        assert!(loaded.interp.is_some(), "the test binary is dynamic");
        assert!(!loaded.libs.is_empty());
        for obj in loaded.interp.iter().chain(&loaded.libs) {
            let m = Mapping::containing(&maps(), obj.addr).expect("mapped");
            let st = nix::sys::stat::fstat(open_mapped(&maps(), obj).unwrap()).unwrap();
            // Inodes only: on btrfs, stat's device is not the one maps shows.
            assert!(same_file(st.st_ino, &m), "{}", obj.path.display());
        }
    }

    #[test]
    fn the_inode_decides_whether_a_file_is_the_mapped_one_not_the_device() {
        let m = Mapping {
            start: 0x1000,
            end: 0x2000,
            dev: (0, 0x28),
            ino: 4711,
        };
        // btrfs: maps shows 00:28, stat of the same file 0:29.
        assert!(same_file(4711, &m));
        assert!(!same_file(4712, &m));
    }

    /// What a package upgrade does to a library in use: a new file renamed over it.
    #[test]
    fn a_library_replaced_after_it_was_mapped_is_read_as_mapped_or_refused() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("libx.so.1");
        std::fs::write(&path, vec![b'A'; 8192]).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: a fresh private read-only mapping of a file this test owns; nothing
        // reads through the pointer, and it is unmapped below.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                8192,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                f.as_raw_fd(),
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED);
        drop(f);
        let obj = Object {
            path: path.clone(),
            addr: at as usize + 4096,
        };
        let m = Mapping::containing(&maps(), obj.addr).unwrap();
        assert!(open_if_mapped(&path, &m).is_ok(), "not replaced yet");
        let new = t.path().join(".libx.so.1.dpkg-new");
        std::fs::write(&new, vec![b'B'; 8192]).unwrap();
        std::fs::rename(&new, &path).unwrap();

        let mut text = Vec::new();
        open_mapped(&maps(), &obj)
            .unwrap()
            .read_to_end(&mut text)
            .unwrap();
        assert!(text.iter().all(|b| *b == b'A'), "the mapped file is read");
        let e = open_if_mapped(&path, &m).unwrap_err().to_string();
        assert!(e.contains("replaced"), "{e}");
        // SAFETY: the mapping made above, unused since.
        assert_eq!(unsafe { libc::munmap(at, 8192) }, 0);
    }
}
