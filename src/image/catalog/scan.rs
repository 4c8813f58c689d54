//! Finding the entries of both caches and what each holds, without locking: a listing
//! is a snapshot, and an entry that vanishes while it is measured is left out.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::{CachedImage, Kind};
use crate::error::{Error, Result};
use crate::image::cache::LAST_USED;
use crate::image::meta::Meta;
use crate::image::published;

/// What a template cache entry says about itself (`key=value` lines).
pub const IMAGE_CONF: &str = "image.conf";

pub fn entries(root: &Path) -> Result<Vec<CachedImage>> {
    let mut out = Vec::new();
    for dir in visible_dirs_at_depth(&root.join("download"), 4)? {
        if let Some(img) = download_entry(&dir)? {
            out.push(img);
        }
    }
    for dir in visible_dirs_at_depth(&root.join("template"), 2)? {
        if let Some(img) = template_entry(&dir)? {
            out.push(img);
        }
    }
    for dir in visible_dirs_at_depth(&root.join(published::DIR), 1)? {
        if let Some(img) = published_entry(&dir) {
            out.push(img);
        }
    }
    out.sort_by(|a, b| {
        let key = |i: &CachedImage| {
            (
                i.kind,
                i.source.clone(),
                i.dist.clone(),
                i.release.clone(),
                i.arch.clone(),
                i.variant.clone(),
                i.path.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// Directories `depth` levels below `base`, none of them hidden (hidden ones are locks
/// and work directories). A missing `base` is an empty cache.
pub fn visible_dirs_at_depth(base: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    let mut level = vec![base.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for dir in &level {
            next.extend(subdirs(dir)?.into_iter().filter(|p| !is_hidden(p)));
        }
        level = next;
    }
    Ok(level)
}

/// The directories (not symlinks) in `dir`; nothing when it does not exist.
pub fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read the image cache directory", dir, e)),
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    v.sort();
    Ok(v)
}

fn is_hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Names of the last `n` components of `dir`, outermost first.
fn last_components(dir: &Path, n: usize) -> Vec<String> {
    let mut v: Vec<String> = dir
        .components()
        .rev()
        .take(n)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    v.reverse();
    v
}

/// A committed download entry: `build_id` is written last, so its presence marks one.
fn download_entry(dir: &Path) -> Result<Option<CachedImage>> {
    let Some(build) = read_trimmed(&dir.join("build_id"))? else {
        return Ok(None);
    };
    let origin = read_trimmed(&dir.join("server"))?.filter(|s| !s.is_empty());
    let expires = Meta::load(&dir.join("meta"))?.expiry;
    let [dist, release, arch, variant]: [String; 4] = match last_components(dir, 4).try_into() {
        Ok(a) => a,
        Err(_) => return Ok(None),
    };
    Ok(Some(CachedImage {
        kind: Kind::Download,
        source: "download".into(),
        origin,
        dist,
        release,
        arch,
        variant,
        build,
        size: disk_usage(dir),
        last_used: last_used(dir),
        expires,
        path: dir.to_path_buf(),
        published: None,
        oci: None,
        blob: None,
    }))
}

/// A template's entry: committed by one rename, so `image.conf` in it marks one.
fn template_entry(dir: &Path) -> Result<Option<CachedImage>> {
    let Some(text) = read_trimmed(&dir.join(IMAGE_CONF))? else {
        return Ok(None);
    };
    let conf = parse_image_conf(&text);
    let get = |k: &str| {
        conf.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let template = last_components(dir, 2).first().cloned().unwrap_or_default();
    let or_dash = |k: &str| get(k).unwrap_or_else(|| "-".into());
    Ok(Some(CachedImage {
        kind: Kind::Template,
        source: template,
        origin: get("source"),
        dist: or_dash("dist"),
        release: or_dash("release"),
        arch: or_dash("arch"),
        variant: or_dash("variant"),
        build: or_dash("build"),
        size: disk_usage(dir),
        last_used: last_used(dir),
        expires: None,
        path: dir.to_path_buf(),
        published: None,
        oci: None,
        blob: None,
    }))
}

/// A published image: committed by one rename, `published.toml` in it.
fn published_entry(dir: &Path) -> Option<CachedImage> {
    let info = published::read_info(dir)?;
    let src = info.source();
    Some(CachedImage {
        kind: Kind::Published,
        source: published::DIR.into(),
        origin: Some(format!("container {}", info.container)),
        dist: src.dist,
        release: src.release,
        arch: src.arch,
        variant: src.variant,
        build: src.build,
        size: disk_usage(dir),
        last_used: last_used(dir),
        expires: None,
        path: dir.to_path_buf(),
        published: Some(info),
        oci: None,
        blob: None,
    })
}

/// `key=value` lines; blank lines and `#` comments skipped, spaces around both trimmed.
pub fn parse_image_conf(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The most of a cache entry's small files (image.conf, build_id, server) read.
const MAX_SMALL_FILE: u64 = 64 << 10;

/// A small regular file's text, trimmed. Anything else there (missing, a link, a FIFO,
/// a device, too large, not UTF-8: a template wrote it) is no text, and the entry is
/// passed over as incomplete rather than read without end or failing every command.
fn read_trimmed(path: &Path) -> Result<Option<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    else {
        return Ok(None);
    };
    if !f
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() <= MAX_SMALL_FILE)
    {
        return Ok(None);
    }
    let mut text = String::new();
    match f.take(MAX_SMALL_FILE).read_to_string(&mut text) {
        Ok(_) => Ok(Some(text.trim().to_string())),
        Err(_) => Ok(None),
    }
}

fn last_used(dir: &Path) -> Option<i64> {
    let m = std::fs::metadata(dir.join(LAST_USED)).ok()?;
    Some(m.mtime())
}

/// Bytes allocated to everything under `path` (as `du -s` counts: blocks, each inode
/// once, symlinks not followed). What vanishes meanwhile counts as nothing.
pub fn disk_usage(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.nlink() > 1 && !m.is_dir() && !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        total += m.blocks() * 512;
        if m.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    total
}

/// Cache entries made by hand, as the two caches leave them.
#[cfg(test)]
pub mod fixtures {
    use super::*;
    use std::fs;

    /// A download entry as Cache::commit leaves it.
    pub fn download(root: &Path, d: &str, r: &str, build: &str, expiry: Option<i64>) -> PathBuf {
        let dir = root.join("download").join(d).join(r).join("amd64/default");
        fs::create_dir_all(dir.join("meta")).unwrap();
        fs::write(dir.join("rootfs.tar"), vec![7u8; 64 << 10]).unwrap();
        fs::write(dir.join("server"), "http://127.0.0.1:8080\n").unwrap();
        if let Some(t) = expiry {
            fs::write(dir.join("meta/expiry"), format!("{t}\n")).unwrap();
        }
        fs::write(dir.join("build_id"), format!("{build}\n")).unwrap();
        dir
    }

    /// A published image as `rlxc-publish` leaves it.
    pub fn published(root: &Path, alias: &str) -> PathBuf {
        let dir = root.join(published::DIR).join(alias);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(published::ROOTFS), vec![7u8; 8192]).unwrap();
        let info = published::Info {
            alias: alias.into(),
            container: "web1".into(),
            created: 1_796_531_260,
            arch: "amd64".into(),
            description: None,
            image: None,
            rlxc_version: "0".into(),
        };
        published::write_info(&dir, &info).unwrap();
        dir
    }

    /// A template entry as the templates' cache leaves it.
    pub fn template(root: &Path, tpl: &str, key: &str, release: &str) -> PathBuf {
        let dir = root.join("template").join(tpl).join(key);
        fs::create_dir_all(dir.join("rootfs/etc")).unwrap();
        fs::write(dir.join("rootfs/etc/hostname"), "x\n").unwrap();
        fs::write(
            dir.join(IMAGE_CONF),
            format!(
                "dist=debian\nrelease={release}\narch=amd64\nvariant=minbase\n\
                 build=20261201\nsource=http://deb.debian.org/debian\n"
            ),
        )
        .unwrap();
        dir
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{download, template};
    use super::*;
    use std::fs;

    #[test]
    fn small_files_that_are_not_small_regular_files_are_no_text() {
        let t = tempfile::tempdir().unwrap();
        let p = |n: &str| t.path().join(n);
        fs::write(p("ok"), " amd64 \n").unwrap();
        fs::write(p("big"), vec![b'x'; MAX_SMALL_FILE as usize + 1]).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p("link")).unwrap();
        nix::unistd::mkfifo(&p("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        assert_eq!(read_trimmed(&p("ok")).unwrap().as_deref(), Some("amd64"));
        for n in ["big", "link", "fifo", "missing"] {
            assert_eq!(read_trimmed(&p(n)).unwrap(), None, "{n}");
        }
    }

    #[test]
    fn both_caches_are_listed_with_what_their_entries_say() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        download(
            root,
            "debian",
            "bookworm",
            "20261201_05:24",
            Some(1_900_000_000),
        );
        download(root, "alpine", "3.20", "20261130_13:00", None);
        template(root, "debian", "bookworm-amd64-minbase-0f3a", "bookworm");
        // Work directories, locks and half entries are not entries.
        fs::create_dir_all(root.join("download/debian/bookworm/amd64/.default.partial.99"))
            .unwrap();
        fs::write(
            root.join("download/debian/bookworm/amd64/.default.lock"),
            "",
        )
        .unwrap();
        fs::create_dir_all(root.join("download/centos/9/amd64/default/meta")).unwrap();
        fs::create_dir_all(root.join("template/debian/.k.staging.99/rootfs")).unwrap();
        fs::create_dir_all(root.join("template/debian/half/rootfs")).unwrap();
        let past =
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let tpl_dir = root.join("template/debian/bookworm-amd64-minbase-0f3a");
        fs::File::create(tpl_dir.join(LAST_USED))
            .unwrap()
            .set_modified(past)
            .unwrap();

        let list = entries(root).unwrap();
        let refs: Vec<String> = list.iter().map(CachedImage::reference).collect();
        assert_eq!(
            refs,
            [
                "download:alpine/3.20/amd64/default",
                "download:debian/bookworm/amd64/default",
                "debian:debian/bookworm/amd64/minbase",
            ]
        );
        let deb = &list[1];
        assert_eq!(deb.build, "20261201_05:24");
        assert_eq!(deb.expires, Some(1_900_000_000));
        assert_eq!(deb.host().as_deref(), Some("127.0.0.1:8080"));
        assert!(deb.size >= 64 << 10, "{}", deb.size);
        assert_eq!(deb.last_used, None);
        let tpl = &list[2];
        assert_eq!((tpl.kind, tpl.build.as_str()), (Kind::Template, "20261201"));
        assert_eq!(tpl.origin.as_deref(), Some("http://deb.debian.org/debian"));
        assert_eq!(tpl.last_used, Some(1_800_000_000));
        assert_eq!(tpl.expires, None);
        assert!(tpl.host().is_none());
    }

    #[test]
    fn an_empty_or_missing_cache_lists_nothing() {
        let t = tempfile::tempdir().unwrap();
        assert!(entries(&t.path().join("nothing-here")).unwrap().is_empty());
        assert!(entries(t.path()).unwrap().is_empty());
    }

    #[test]
    fn hard_links_are_counted_once() {
        let t = tempfile::tempdir().unwrap();
        let a = t.path().join("a");
        fs::write(&a, vec![1u8; 256 << 10]).unwrap();
        let one = disk_usage(t.path());
        fs::hard_link(&a, t.path().join("b")).unwrap();
        assert_eq!(disk_usage(t.path()), one);
        assert!(one >= 256 << 10);
    }

    #[test]
    fn image_conf_lines() {
        let c = parse_image_conf("# built by rlxc\ndist = debian\n\nbad line\nsource=a=b\n");
        assert_eq!(
            c,
            [
                ("dist".to_string(), "debian".to_string()),
                ("source".into(), "a=b".into())
            ]
        );
    }
}
