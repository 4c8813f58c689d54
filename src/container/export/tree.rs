//! The tree writer rlxc-export and rlxc-publish share: GNU tar's archive of a stopped
//! container's rootfs (numeric owners, modes, xattrs with file capabilities, ACLs,
//! hardlinks, devices, mtimes), zstd-compressed into a file. GNU tar runs inside the
//! tree (`Tree::command`), so an overlay's merged view needs no mount anyone sees.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::{Child, Stdio};

use crate::container::tree::Tree;
use crate::error::{Error, IoContext, Result};
use crate::image::fetch::Progress;

/// zstd's default: about GNU tar's speed on this kind of data, a third of the size.
const ZSTD_LEVEL: i32 = 3;
/// The most of GNU tar's complaints kept for an error message.
const MAX_TAR_STDERR: u64 = 16 << 10;

pub type Compressor = zstd::stream::write::Encoder<'static, BufWriter<File>>;

/// What goes into the archive: a rootfs, less some of its files, then files of another
/// directory in their place (an image's own version of files that named the container).
pub struct TreeSpec<'a> {
    pub tree: &'a Tree,
    /// Members left out: exact paths relative to the rootfs (`etc/ssh/ssh_host_rsa_key`).
    pub exclude: &'a [Vec<u8>],
    /// A directory and paths in it, archived after the rootfs under those paths.
    pub append: Option<(&'a Path, &'a [&'a str])>,
}

impl<'a> TreeSpec<'a> {
    /// The whole tree as it is.
    pub fn whole(tree: &'a Tree) -> Self {
        TreeSpec {
            tree,
            exclude: &[],
            append: None,
        }
    }
}

/// `file` (at `path`) as the zstd stream `fill` writes, finished and on disk; returns
/// what `fill` returned.
pub fn compress_into(
    file: &File,
    path: &Path,
    fill: impl FnOnce(&mut Compressor) -> Result<u64>,
) -> Result<u64> {
    let file = file.try_clone().ctx("open", path)?;
    let mut enc = zstd::stream::write::Encoder::new(BufWriter::new(file), ZSTD_LEVEL)
        .ctx("start compressing into", path)?;
    // A corrupt archive is then told when it is read, not unpacked as garbage.
    enc.include_checksum(true)
        .ctx("start compressing into", path)?;
    let n = fill(&mut enc)?;
    let buffered = enc.finish().ctx("write", path)?;
    let file = buffered
        .into_inner()
        .map_err(|e| Error::io("write", path, e.into_error()))?;
    file.sync_all().ctx("write", path)?;
    Ok(n)
}

/// GNU tar's archive of `spec` copied into `out`; returns its size.
pub fn copy_tree(
    spec: &TreeSpec,
    out: &mut impl Write,
    out_path: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    let shown = spec.tree.shown();
    let mut tar = TarChild::spawn(spec)?;
    let mut stdout = tar
        .child
        .stdout
        .take()
        .ok_or_else(|| Error::Other("GNU tar gave no output pipe".into()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        let n = match stdout.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("read GNU tar's output for", &shown, e)),
        };
        out.write_all(&buf[..n]).ctx("write", out_path)?;
        total += n as u64;
        progress.advance(n as u64);
    }
    tar.wait(&shown)?;
    Ok(total)
}

/// GNU tar writing a rootfs to its stdout; killed and reaped if dropped early.
struct TarChild {
    child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    done: bool,
}

impl TarChild {
    /// Run in the tree: `.` is its root, whatever backs it.
    fn spawn(spec: &TreeSpec) -> Result<Self> {
        let rootfs = spec.tree.shown();
        let mut cmd = spec.tree.command("tar");
        cmd.args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "--sort=name",
            "--format=posix",
            // Exclusions are exact member names, whatever characters they hold.
            "--anchored",
            "--no-wildcards",
        ]);
        for rel in spec.exclude {
            cmd.arg(OsString::from_vec([b"--exclude=./", &rel[..]].concat()));
        }
        cmd.args(["-cf", "-", "."]);
        if let Some((dir, names)) = spec.append {
            // Absolute: tar starts in the tree. Named without `./`, so the exclusions
            // above do not match them.
            let dir = std::path::absolute(dir).ctx("resolve", dir)?;
            cmd.arg("-C").arg(dir).args(names.iter());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its messages must not depend on the sysadmin's locale to be quoted to them.
            .env("LC_ALL", "C");
        let mut child = cmd.spawn().map_err(|e| {
            Error::io(
                "run GNU tar (install the tar package) to archive",
                &rootfs,
                e,
            )
        })?;
        // Drained beside the copy: a full stderr pipe would stall tar and the copy.
        let stderr = child.stderr.take().map(|s| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = s.take(MAX_TAR_STDERR).read_to_string(&mut text);
                text
            })
        });
        Ok(TarChild {
            child,
            stderr,
            done: false,
        })
    }

    fn wait(&mut self, rootfs: &Path) -> Result<()> {
        let status = self.child.wait().ctx("wait for GNU tar on", rootfs)?;
        self.done = true;
        let msg = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if crate::sys::interrupted() {
            return Err(Error::Interrupted);
        }
        if status.success() {
            return Ok(());
        }
        Err(Error::Other(format!(
            "GNU tar could not archive {} ({status}): {}; nothing was written",
            rootfs.display(),
            msg.trim()
        )))
    }
}

impl Drop for TarChild {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
