//! The btrfs ioctls the btrfs backing store needs (linux/btrfs.h), and statx for telling
//! a subvolume from a mount point. As root (the tree search and lookups need
//! CAP_SYS_ADMIN), Linux 5.8 or later; no btrfs-progs.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

const MAGIC: u8 = 0x94;
/// BTRFS_PATH_NAME_MAX + 1.
const NAME_LEN: usize = 4088;
/// BTRFS_SUBVOL_NAME_MAX + 1.
const NAME_LEN_V2: usize = 4040;
/// The subvolume flag of a read-only subvolume (BTRFS_SUBVOL_RDONLY).
pub const SUBVOL_RDONLY: u64 = 1 << 1;
/// The inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID).
pub const SUBVOL_ROOT_INO: u64 = 256;

/// struct btrfs_ioctl_vol_args.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; NAME_LEN],
}

/// struct btrfs_ioctl_vol_args_v2 (the qgroup union as its `unused` words).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; NAME_LEN_V2],
}

/// struct btrfs_ioctl_search_key.
#[repr(C)]
#[derive(Default)]
struct SearchKey {
    tree_id: u64,
    min_objectid: u64,
    max_objectid: u64,
    min_offset: u64,
    max_offset: u64,
    min_transid: u64,
    max_transid: u64,
    min_type: u32,
    max_type: u32,
    nr_items: u32,
    unused: u32,
    unused1: [u64; 4],
}

/// struct btrfs_ioctl_search_args: the key, then the items found (header + data each).
#[repr(C)]
struct SearchArgs {
    key: SearchKey,
    buf: [u8; 4096 - std::mem::size_of::<SearchKey>()],
}

/// struct btrfs_ioctl_ino_lookup_args.
#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

// The kernel's sizes: each argument is one 4 KiB page.
const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);
const _: () = assert!(std::mem::size_of::<SearchArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<InoLookupArgs>() == 4096);

const SUBVOL_CREATE: libc::c_ulong =
    nix::request_code_write!(MAGIC, 14, std::mem::size_of::<VolArgs>()) as libc::c_ulong;
const TREE_SEARCH: libc::c_ulong =
    nix::request_code_readwrite!(MAGIC, 17, std::mem::size_of::<SearchArgs>()) as libc::c_ulong;
const INO_LOOKUP: libc::c_ulong =
    nix::request_code_readwrite!(MAGIC, 18, std::mem::size_of::<InoLookupArgs>()) as libc::c_ulong;
const SNAP_CREATE_V2: libc::c_ulong =
    nix::request_code_write!(MAGIC, 23, std::mem::size_of::<VolArgsV2>()) as libc::c_ulong;
const SUBVOL_GETFLAGS: libc::c_ulong =
    nix::request_code_read!(MAGIC, 25, std::mem::size_of::<u64>()) as libc::c_ulong;
const SUBVOL_SETFLAGS: libc::c_ulong =
    nix::request_code_write!(MAGIC, 26, std::mem::size_of::<u64>()) as libc::c_ulong;
const SNAP_DESTROY_V2: libc::c_ulong =
    nix::request_code_write!(MAGIC, 63, std::mem::size_of::<VolArgsV2>()) as libc::c_ulong;
/// BTRFS_SUBVOL_SPEC_BY_ID: SNAP_DESTROY_V2 names the subvolume by id.
const SUBVOL_SPEC_BY_ID: u64 = 1 << 4;
const ROOT_TREE_OBJECTID: u64 = 1;
const ROOT_REF_KEY: u32 = 156;

/// `name` as a NUL-terminated single component in a buffer of N bytes.
fn name_buf<const N: usize>(name: &OsStr) -> io::Result<[u8; N]> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() >= N
        || b.contains(&0)
        || b.contains(&b'/')
        || b == b"."
        || b == b".."
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a single file name",
        ));
    }
    let mut buf = [0u8; N];
    buf[..b.len()].copy_from_slice(b);
    Ok(buf)
}

fn ioctl_result(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A new, empty subvolume `name` in the directory `parent`.
pub fn subvol_create(parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let args = VolArgs {
        fd: 0,
        name: name_buf(name)?,
    };
    // SAFETY: SUBVOL_CREATE reads one btrfs_ioctl_vol_args, which `args` is (repr(C), the
    // kernel's layout and size, name NUL-terminated); `parent` is a live descriptor.
    ioctl_result(unsafe { libc::ioctl(parent.as_raw_fd(), SUBVOL_CREATE, &args) })
}

/// A writable snapshot of the subvolume whose root `source` is open on, as `name` in the
/// directory `parent` (on the same file system, else EXDEV).
pub fn snap_create(source: BorrowedFd<'_>, parent: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let args = VolArgsV2 {
        fd: i64::from(source.as_raw_fd()),
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: name_buf(name)?,
    };
    // SAFETY: SNAP_CREATE_V2 reads one btrfs_ioctl_vol_args_v2, which `args` is (repr(C),
    // the kernel's layout and size, no flags so no qgroup pointer is read, name
    // NUL-terminated); both descriptors are live for the call.
    ioctl_result(unsafe { libc::ioctl(parent.as_raw_fd(), SNAP_CREATE_V2, &args) })
}

/// Delete subvolume `id` of the file system `fd` is on (any descriptor there), whatever
/// it holds but subvolumes nested in it (ENOTEMPTY). Linux 5.7.
pub fn snap_destroy_by_id(fd: BorrowedFd<'_>, id: u64) -> io::Result<()> {
    let mut args = VolArgsV2 {
        fd: 0,
        transid: 0,
        flags: SUBVOL_SPEC_BY_ID,
        unused: [0; 4],
        name: [0; NAME_LEN_V2],
    };
    // The union's `subvolid` member.
    args.name[..8].copy_from_slice(&id.to_ne_bytes());
    // SAFETY: SNAP_DESTROY_V2 reads one btrfs_ioctl_vol_args_v2, which `args` is (repr(C),
    // the kernel's layout and size); `fd` is a live descriptor.
    ioctl_result(unsafe { libc::ioctl(fd.as_raw_fd(), SNAP_DESTROY_V2, &args) })
}

/// A subvolume directly inside another: its id, the inode of the directory holding it (in
/// the parent subvolume) and its name there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef {
    pub id: u64,
    pub dirid: u64,
    pub name: Vec<u8>,
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "a truncated btrfs search result",
    )
}

/// N bytes of `buf` at `at`.
fn field<const N: usize>(buf: &[u8], at: usize) -> io::Result<[u8; N]> {
    buf.get(at..at.saturating_add(N))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(truncated)
}

/// The subvolumes directly inside subvolume `parent` (its ROOT_REF items in the root
/// tree), on the file system `fd` is on. Needs CAP_SYS_ADMIN.
pub fn child_subvolumes(fd: BorrowedFd<'_>, parent: u64) -> io::Result<Vec<ChildRef>> {
    const HEADER: usize = 32;
    let mut out = Vec::new();
    let mut min_offset = 0u64;
    loop {
        let mut args = SearchArgs {
            key: SearchKey {
                tree_id: ROOT_TREE_OBJECTID,
                min_objectid: parent,
                max_objectid: parent,
                min_offset,
                max_offset: u64::MAX,
                min_transid: 0,
                max_transid: u64::MAX,
                min_type: ROOT_REF_KEY,
                max_type: ROOT_REF_KEY,
                nr_items: 4096,
                ..SearchKey::default()
            },
            buf: [0; 4096 - std::mem::size_of::<SearchKey>()],
        };
        // SAFETY: TREE_SEARCH reads and writes one btrfs_ioctl_search_args, which `args` is
        // (repr(C), the kernel's layout and size); the kernel writes at most `buf`'s length.
        ioctl_result(unsafe { libc::ioctl(fd.as_raw_fd(), TREE_SEARCH, &mut args) })?;
        let n = args.key.nr_items;
        if n == 0 {
            return Ok(out);
        }
        let buf = &args.buf;
        let mut pos = 0usize;
        let mut last = 0u64;
        for _ in 0..n {
            // struct btrfs_ioctl_search_header: transid, objectid, offset, type, len.
            let offset = u64::from_ne_bytes(field(buf, pos + 16)?);
            let kind = u32::from_ne_bytes(field(buf, pos + 24)?);
            let len = u32::from_ne_bytes(field(buf, pos + 28)?) as usize;
            let data = buf
                .get(pos + HEADER..pos + HEADER + len)
                .ok_or_else(truncated)?;
            pos += HEADER + len;
            last = offset;
            if kind != ROOT_REF_KEY {
                continue;
            }
            // struct btrfs_root_ref (packed, little-endian): dirid, sequence, name_len; name.
            let name_len = u16::from_le_bytes(field(data, 16)?) as usize;
            let name = data.get(18..18 + name_len).ok_or_else(truncated)?;
            out.push(ChildRef {
                id: offset,
                dirid: u64::from_le_bytes(field(data, 0)?),
                name: name.to_vec(),
            });
        }
        match last.checked_add(1) {
            Some(next) => min_offset = next,
            None => return Ok(out),
        }
    }
}

/// The path of directory `ino` inside subvolume `tree` (0: the one `fd` is in), relative
/// to that subvolume's root, with a trailing `/` ("" for the root); and the subvolume's
/// id. Needs CAP_SYS_ADMIN.
pub fn ino_path(fd: BorrowedFd<'_>, tree: u64, ino: u64) -> io::Result<(u64, Vec<u8>)> {
    let mut args = InoLookupArgs {
        treeid: tree,
        objectid: ino,
        name: [0; 4080],
    };
    // SAFETY: INO_LOOKUP reads and writes one btrfs_ioctl_ino_lookup_args, which `args` is
    // (repr(C), the kernel's layout and size); the kernel NUL-terminates `name`.
    ioctl_result(unsafe { libc::ioctl(fd.as_raw_fd(), INO_LOOKUP, &mut args) })?;
    let end = args
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(args.name.len());
    Ok((args.treeid, args.name[..end].to_vec()))
}

/// The flags (SUBVOL_RDONLY) of the subvolume whose root `fd` is open on.
pub fn subvol_flags(fd: BorrowedFd<'_>) -> io::Result<u64> {
    let mut flags = 0u64;
    // SAFETY: SUBVOL_GETFLAGS writes one u64 through the pointer, which points at `flags`.
    ioctl_result(unsafe { libc::ioctl(fd.as_raw_fd(), SUBVOL_GETFLAGS, &mut flags) })?;
    Ok(flags)
}

pub fn set_subvol_flags(fd: BorrowedFd<'_>, flags: u64) -> io::Result<()> {
    // SAFETY: SUBVOL_SETFLAGS reads one u64 through the pointer, which points at `flags`.
    ioctl_result(unsafe { libc::ioctl(fd.as_raw_fd(), SUBVOL_SETFLAGS, &flags) })
}

/// What statx says of an entry, for a walk that must tell subvolumes from mount points
/// (both change st_dev).
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub ino: u64,
    /// The root of a mount (STATX_ATTR_MOUNT_ROOT, Linux 5.8).
    pub mount_root: bool,
    /// The mount it is on: the first field of /proc/self/mountinfo (Linux 5.8).
    pub mnt_id: u64,
}

/// statx of `name` in `dir`, not following a symlink; an empty name: `dir` itself.
pub fn entry_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Entry> {
    let cname = super::cstring(name.as_bytes())?;
    let flags = libc::AT_SYMLINK_NOFOLLOW
        | libc::AT_NO_AUTOMOUNT
        | if name.is_empty() {
            libc::AT_EMPTY_PATH
        } else {
            0
        };
    // SAFETY: all-zero is a valid statx (plain integers).
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `cname` is NUL-terminated and outlives the call; `stx` is a writable statx;
    // `dir` is a live descriptor.
    let r = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            cname.as_ptr(),
            flags,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    ioctl_result(r)?;
    let mount_root = libc::STATX_ATTR_MOUNT_ROOT as u64;
    Ok(Entry {
        ino: stx.stx_ino,
        mount_root: stx.stx_attributes & mount_root != 0,
        mnt_id: stx.stx_mnt_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_codes_are_the_kernels() {
        assert_eq!(SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(TREE_SEARCH, 0xd000_9411);
        assert_eq!(INO_LOOKUP, 0xd000_9412);
        assert_eq!(SNAP_CREATE_V2, 0x5000_9417);
        assert_eq!(SUBVOL_GETFLAGS, 0x8008_9419);
        assert_eq!(SUBVOL_SETFLAGS, 0x4008_941a);
        assert_eq!(SNAP_DESTROY_V2, 0x5000_943f);
    }

    #[test]
    fn only_single_names_fit() {
        let b = name_buf::<16>(OsStr::new("rootfs")).unwrap();
        assert_eq!(&b[..7], b"rootfs\0");
        for bad in ["", ".", "..", "a/b", "a\0b", "0123456789abcdef"] {
            assert!(name_buf::<16>(OsStr::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_truncated_search_result_is_an_error_not_a_panic() {
        let buf = [1u8; 10];
        assert_eq!(field::<8>(&buf, 2).unwrap(), [1; 8]);
        assert!(field::<8>(&buf, 3).is_err());
        assert!(field::<8>(&buf, usize::MAX).is_err());
    }
}
