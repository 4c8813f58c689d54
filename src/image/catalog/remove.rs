//! Removing cache entries. Under the entry's exclusive lock the directory is renamed to
//! a hidden `.NAME.removing.PID` beside it, and only then deleted: a crash mid-delete
//! leaves a hidden directory that the next rm, prune or download sweeps, never a half
//! entry that looks valid.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{locks, lowers, oci, scan, CachedImage, Catalog, ImageRef, Kind};
use crate::error::{Error, Result};
use crate::image::cache::{self, REMOVING_TAG, STAGING_TAG};
use crate::image::fetch::Progress;
use crate::image::published;
use crate::{store, sys};

/// Work-directory tags of both caches: `.NAME.TAG.PID`.
const WORK_TAGS: &[&str] = &[STAGING_TAG, "staging", REMOVING_TAG];

pub struct RemoveReport {
    pub removed: Vec<CachedImage>,
    /// Entries a create kept using for the whole wait (`Error::ImageBusy` each).
    pub busy: Vec<Error>,
    /// Work directories of dead processes swept on the way.
    pub leftovers: Vec<Leftover>,
}

/// A staging or removing directory whose process died.
pub struct Leftover {
    pub path: PathBuf,
    pub size: u64,
}

#[derive(Default)]
pub struct PruneReport {
    /// What was removed, and why ("expired", "unused").
    pub removed: Vec<(CachedImage, &'static str)>,
    /// Entries kept because a create is using them, with the holder.
    pub in_use: Vec<(CachedImage, String)>,
    pub leftovers: Vec<Leftover>,
}

impl PruneReport {
    pub fn freed(&self) -> u64 {
        self.removed.iter().map(|(i, _)| i.size).sum::<u64>()
            + self.leftovers.iter().map(|l| l.size).sum::<u64>()
    }
}

pub fn remove(
    cat: &Catalog,
    refs: &[ImageRef],
    wait: Duration,
    progress: &dyn Progress,
) -> Result<RemoveReport> {
    let leftovers = sweep(cat.root());
    let all = cat.list()?;
    let mut chosen: Vec<CachedImage> = Vec::new();
    for r in refs {
        let hits: Vec<&CachedImage> = all.iter().filter(|i| r.matches(i)).collect();
        if hits.is_empty() {
            return Err(Error::NotCached {
                reference: r.to_string(),
                have: all
                    .iter()
                    .filter(|i| i.kind != Kind::Blob)
                    .map(CachedImage::reference)
                    .collect(),
                cachepath: cat.root().to_path_buf(),
            });
        }
        for h in hits {
            if !chosen.iter().any(|c| c.path == h.path) {
                chosen.push(h.clone());
            }
        }
    }
    let mut report = RemoveReport {
        removed: Vec::new(),
        busy: Vec::new(),
        leftovers,
    };
    let (ocis, chosen): (Vec<CachedImage>, Vec<CachedImage>) =
        chosen.into_iter().partition(|i| i.kind == Kind::Oci);
    oci::remove(cat, &ocis, wait, progress, &mut report)?;
    for img in chosen {
        let mut on_wait = |holder: &str| {
            progress.message(&format!(
                "waiting up to {} s for {} to be free: in use by {holder}",
                wait.as_secs_f64().ceil() as u64,
                img.reference()
            ))
        };
        match locks::exclusive(&img.lock_path(), wait, &mut on_wait)? {
            Ok(_lock) => match remove_unused(cat, &img)? {
                Ok(true) => {
                    if let Some(p) = &img.published {
                        report.removed.extend(derived(cat, &p.alias));
                    }
                    report.removed.push(img)
                }
                Ok(false) => {}
                Err(containers) => report.busy.push(Error::ImageUsed {
                    image: img.reference(),
                    containers,
                }),
            },
            Err(busy) => report.busy.push(Error::ImageBusy {
                image: img.reference(),
                holder: busy.holder,
                waited: wait,
            }),
        }
    }
    Ok(report)
}

pub fn prune(cat: &Catalog, all: bool) -> Result<PruneReport> {
    let mut report = PruneReport {
        leftovers: sweep(cat.root()),
        ..PruneReport::default()
    };
    let now = cache::now();
    for img in cat.list()? {
        let why = match (img.kind, img.is_expired(now)) {
            // The only copy of what it holds: `rm ALIAS` removes it, nothing else.
            (Kind::Published, _) => continue,
            // Under the blob store's one lock, below.
            (Kind::Oci | Kind::Blob, _) => continue,
            (Kind::Download, true) => "expired",
            _ if all => "unused",
            (Kind::Download, false) => {
                report.leftovers.extend(old_lowers(cat, &img)?);
                continue;
            }
            _ => continue,
        };
        match locks::exclusive(&img.lock_path(), Duration::ZERO, &mut |_| {})? {
            Ok(_lock) => match remove_unused(cat, &img)? {
                Ok(true) => report.removed.push((img, why)),
                Ok(false) => {}
                Err(users) => {
                    let holder = format!("the overlay lower of {}", users.join(", "));
                    report.in_use.push((img, holder))
                }
            },
            Err(busy) => report.in_use.push((img, busy.holder)),
        }
    }
    oci::prune(cat, all, &mut report)?;
    Ok(report)
}

/// Remove `img` (its exclusive lock held) with its overlay lowers, unless containers
/// are layered on them: then `Err` names them and nothing is removed. Ok(false): there
/// was no entry.
fn remove_unused(
    cat: &Catalog,
    img: &CachedImage,
) -> Result<std::result::Result<bool, Vec<String>>> {
    if let Some(lowers) = lowers::dir_of(cat.root(), img) {
        if let Some(lxcpath) = &cat.lxcpath {
            let users = lowers::users(lxcpath, &lowers)?;
            if !users.is_empty() {
                return Ok(Err(users));
            }
        }
        lowers::remove(&lowers)?;
    }
    Ok(Ok(cache::remove_entry_dir(&img.path)?))
}

/// The lowers of builds `img` no longer holds (a refresh replaced them) that no
/// container uses; only when the containers can be looked at.
fn old_lowers(cat: &Catalog, img: &CachedImage) -> Result<Vec<Leftover>> {
    let (Some(lxcpath), Some(dir)) = (&cat.lxcpath, lowers::dir_of(cat.root(), img)) else {
        return Ok(Vec::new());
    };
    let current = crate::image::lower::dir_name(&img.build);
    let Ok(Ok(_lock)) = locks::exclusive(&img.lock_path(), Duration::ZERO, &mut |_| {}) else {
        return Ok(Vec::new());
    };
    let mut layering = lowers::Layering::new(lxcpath);
    let mut out = Vec::new();
    for build in scan::subdirs(&dir)? {
        let name = build.file_name().map(|n| n.to_string_lossy().into_owned());
        let hidden = name.as_deref().is_none_or(|n| n.starts_with('.'));
        if hidden || name == current || !layering.users(&build)?.is_empty() {
            continue;
        }
        let size = scan::disk_usage(&build);
        if cache::remove_entry_dir(&build)? {
            out.push(Leftover { path: build, size });
        }
    }
    Ok(out)
}

/// The `-t local` entries a create decompressed from the published image `alias`
/// (see `template::Local::published`), removed unless a create reads one now.
pub fn derived(cat: &Catalog, alias: &str) -> Vec<CachedImage> {
    let origin = format!("{}:{alias}", published::DIR);
    let mut removed = Vec::new();
    for img in cat.list().unwrap_or_default() {
        let ours = img.kind == Kind::Template
            && img.source == "local"
            && img.origin.as_deref() == Some(origin.as_str());
        if !ours {
            continue;
        }
        if let Ok(Ok(_lock)) = locks::exclusive(&img.lock_path(), Duration::ZERO, &mut |_| {}) {
            if cache::remove_entry_dir(&img.path).unwrap_or(false) {
                removed.push(img);
            }
        }
    }
    removed
}

/// Remove the work directories (`.NAME.partial.PID`, `.NAME.staging.PID`,
/// `.NAME.removing.PID`) whose process is gone, wherever entries live, and the partial
/// blobs of OCI pulls that died.
pub fn sweep(root: &Path) -> Vec<Leftover> {
    let mut found: Vec<Leftover> = crate::image::oci::record::sweep(root)
        .into_iter()
        .map(|(path, size)| Leftover { path, size })
        .collect();
    let parents = [
        scan::visible_dirs_at_depth(&root.join("download"), 3).unwrap_or_default(),
        scan::visible_dirs_at_depth(&root.join("template"), 1).unwrap_or_default(),
        vec![root.join(published::DIR)],
    ];
    for parent in parents.iter().flatten() {
        for dir in scan::subdirs(parent).unwrap_or_default() {
            let dead_pid = work_dir_pid(&dir).is_some_and(|pid| !sys::pid_alive(pid));
            // Held while it is removed, so no builder can take it up meanwhile.
            let abandoned = (!dead_pid)
                .then(|| abandoned_template_build(&dir))
                .flatten();
            if dead_pid || abandoned.is_some() {
                let size = scan::disk_usage(&dir);
                if store::remove_tree(&dir).is_ok() {
                    found.push(Leftover { path: dir, size });
                }
            }
        }
    }
    found
}

/// A template's build directory (`.KEY.staging.tpl-XXXXXX`) whose builder is gone: a
/// template runs in its own PID namespace, so its builds are told alive by the flock
/// the builder holds on the directory, not by a pid. Returns that lock, taken.
fn abandoned_template_build(dir: &Path) -> Option<nix::fcntl::Flock<std::fs::File>> {
    let name = dir.file_name()?.to_str()?;
    let (_, suffix) = name.strip_prefix('.')?.rsplit_once(".staging.")?;
    if !suffix.starts_with("tpl-") {
        return None;
    }
    let f = std::fs::File::open(dir).ok()?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
}

/// The pid in a work directory's name `.NAME.TAG.PID`, if it is one.
fn work_dir_pid(dir: &Path) -> Option<i32> {
    cache::work_name_pid(&dir.file_name()?.to_string_lossy(), WORK_TAGS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::catalog::scan::fixtures;
    use std::fs;

    struct Quiet;
    impl Progress for Quiet {
        fn start(&self, _: &str, _: Option<u64>) {}
        fn advance(&self, _: u64) {}
        fn finish(&self) {}
        fn message(&self, _: &str) {}
    }

    fn refs(list: &[&str]) -> Vec<ImageRef> {
        list.iter().map(|s| ImageRef::parse(s).unwrap()).collect()
    }

    /// The debian/bookworm download entry under `root`, held as a create holds it.
    fn read_as_a_create_does(root: &Path) -> cache::Entry {
        let key = crate::image::download::key("debian", "bookworm", "amd64", "default");
        cache::Cache::new(root)
            .get(&key)
            .unwrap()
            .expect("the entry")
    }

    /// A pid that is certainly not running: a child that has exited and been reaped.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn work_dir_names() {
        let p = |s: &str| work_dir_pid(Path::new(s));
        assert_eq!(p("/c/download/d/r/a/.default.partial.42"), Some(42));
        assert_eq!(p("/c/template/debian/.bookworm-x.staging.7"), Some(7));
        assert_eq!(p("/c/template/debian/.k.removing.9"), Some(9));
        assert_eq!(p("/c/template/debian/.k.lock"), None);
        assert_eq!(p("/c/template/debian/k.removing.9"), None);
        assert_eq!(p("/c/template/debian/..removing.9"), None);
        assert_eq!(p("/c/template/debian/.k.other.9"), None);
        assert_eq!(p("/c/template/debian/.k.removing.x"), None);
    }

    #[test]
    fn rm_removes_every_match_and_refuses_an_unknown_ref_before_removing_any() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let deb = fixtures::download(root, "debian", "bookworm", "b1", None);
        let alp = fixtures::download(root, "alpine", "3.20", "b2", None);
        let tpl = fixtures::template(root, "debian", "k1", "bookworm");
        let cat = Catalog::new(root);
        let e = remove(
            &cat,
            &refs(&["debian/bookworm", "centos/7"]),
            Duration::ZERO,
            &Quiet,
        )
        .err()
        .expect("centos/7 matches nothing");
        let msg = e.to_string();
        assert!(msg.contains("centos/7"), "{msg}");
        assert!(deb.is_dir() && tpl.is_dir(), "nothing removed on a miss");
        let hint = e.hint().unwrap_or_default();
        assert!(
            hint.contains("download:alpine/3.20/amd64/default"),
            "{hint}"
        );

        let r = remove(&cat, &refs(&["debian/bookworm"]), Duration::ZERO, &Quiet).unwrap();
        let gone: Vec<String> = r.removed.iter().map(CachedImage::reference).collect();
        assert_eq!(
            gone,
            [
                "download:debian/bookworm/amd64/default",
                "debian:debian/bookworm/amd64/minbase"
            ]
        );
        assert!(!deb.exists() && !tpl.exists() && alp.is_dir());
        let hidden: Vec<_> = fs::read_dir(deb.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("removing"))
            .collect();
        assert!(hidden.is_empty(), "{hidden:?}");
    }

    #[test]
    fn rm_of_an_entry_in_use_is_refused_with_the_holder_named() {
        let t = tempfile::tempdir().unwrap();
        let deb = fixtures::download(t.path(), "debian", "bookworm", "b1", None);
        let reading = read_as_a_create_does(t.path());
        let cat = Catalog::new(t.path());
        let r = remove(
            &cat,
            &refs(&["download:debian/bookworm"]),
            Duration::from_millis(200),
            &Quiet,
        )
        .unwrap();
        assert!(r.removed.is_empty());
        let msg = r.busy[0].to_string();
        assert!(
            msg.contains("download:debian/bookworm/amd64/default"),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(deb.join("build_id").is_file(), "the entry is untouched");
        drop(reading);
        let r = remove(&cat, &refs(&["debian/bookworm"]), Duration::ZERO, &Quiet).unwrap();
        assert_eq!(r.removed.len(), 1);
    }

    #[test]
    fn prune_takes_expired_entries_and_dead_work_dirs_and_all_with_all() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let now = cache::now();
        let old = fixtures::download(root, "debian", "bookworm", "b1", Some(now - 60));
        let fresh = fixtures::download(root, "alpine", "3.20", "b2", Some(now + 86400));
        let tpl = fixtures::template(root, "debian", "k1", "bookworm");
        let dead = dead_pid();
        let stale = root.join(format!(
            "download/alpine/3.20/amd64/.default.partial.{dead}"
        ));
        let stale_tpl = root.join(format!("template/debian/.k1.removing.{dead}"));
        let live = root.join(format!(
            "template/debian/.k2.staging.{}",
            std::process::id()
        ));
        // A template build (its own PID namespace: no pid in the name) whose builder died,
        // and one whose builder still holds its lock.
        let dead_build = root.join("template/debian/.k3.staging.tpl-AbC123");
        let live_build = root.join("template/debian/.k4.staging.tpl-XyZ789");
        for d in [&stale, &stale_tpl, &live, &dead_build, &live_build] {
            fs::create_dir_all(d).unwrap();
            fs::write(d.join("data"), vec![0u8; 8192]).unwrap();
        }
        let _builder = nix::fcntl::Flock::lock(
            fs::File::open(&live_build).unwrap(),
            nix::fcntl::FlockArg::LockExclusive,
        )
        .unwrap();
        let cat = Catalog::new(root);
        let r = prune(&cat, false).unwrap();
        let removed: Vec<_> = r.removed.iter().map(|(i, w)| (i.reference(), *w)).collect();
        assert_eq!(
            removed,
            [(
                "download:debian/bookworm/amd64/default".to_string(),
                "expired"
            )]
        );
        let mut swept: Vec<_> = r.leftovers.iter().map(|l| l.path.clone()).collect();
        swept.sort();
        let mut want = vec![stale.clone(), stale_tpl.clone(), dead_build.clone()];
        want.sort();
        assert_eq!(swept, want);
        assert!(r.freed() >= (64 << 10) + 3 * 8192, "{}", r.freed());
        assert!(!old.exists() && fresh.is_dir() && tpl.is_dir() && live.is_dir());
        assert!(live_build.is_dir(), "a build in progress is kept");

        let r = prune(&cat, true).unwrap();
        assert_eq!(r.removed.len(), 2);
        assert!(r.removed.iter().all(|(_, w)| *w == "unused"));
        assert!(!fresh.exists() && !tpl.exists() && live.is_dir());
    }

    #[test]
    fn a_published_image_goes_by_its_alias_only_with_the_trees_made_from_it() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let web = fixtures::published(root, "web");
        let other = fixtures::published(root, "other");
        // What a create from each left in the local template's cache.
        let derived = |key: &str, alias: &str| {
            let dir = root.join("template/local").join(key);
            fs::create_dir_all(&dir).unwrap();
            let conf = format!("dist=published\nrelease={alias}\nsource=published:{alias}\n");
            fs::write(dir.join(scan::IMAGE_CONF), conf).unwrap();
            dir
        };
        let (web_tree, other_tree) = (derived("k1", "web"), derived("k2", "other"));
        let dead = dead_pid();
        let half = root.join(format!("published/.web.staging.{dead}"));
        fs::create_dir_all(&half).unwrap();
        let cat = Catalog::new(root);
        let listed: Vec<String> = cat.list().unwrap().iter().map(|i| i.reference()).collect();
        assert!(listed.contains(&"published:web".to_string()), "{listed:?}");

        let r = prune(&cat, true).unwrap();
        assert!(
            web.is_dir() && other.is_dir(),
            "prune keeps published images"
        );
        assert!(
            !web_tree.exists() && !other_tree.exists(),
            "but not the trees"
        );
        assert_eq!(r.leftovers.len(), 1);
        assert!(!half.exists());

        let (web_tree, other_tree) = (derived("k1", "web"), derived("k2", "other"));
        let r = remove(&cat, &refs(&["web"]), Duration::ZERO, &Quiet).unwrap();
        let gone: Vec<String> = r.removed.iter().map(CachedImage::reference).collect();
        assert_eq!(gone, ["local:published/web/-/-", "published:web"]);
        assert!(!web.exists() && !web_tree.exists());
        assert!(other.is_dir() && other_tree.is_dir());
    }

    #[test]
    fn prune_all_keeps_what_a_create_is_reading() {
        let t = tempfile::tempdir().unwrap();
        let deb = fixtures::download(t.path(), "debian", "bookworm", "b1", None);
        let _reading = read_as_a_create_does(t.path());
        let r = prune(&Catalog::new(t.path()), true).unwrap();
        assert!(r.removed.is_empty());
        assert_eq!(r.in_use.len(), 1);
        assert!(r.in_use[0].1.contains("pid"), "{}", r.in_use[0].1);
        assert!(deb.join("build_id").is_file());
    }

    #[test]
    fn prune_removes_the_unused_lowers_of_replaced_builds_and_rm_keeps_used_ones() {
        use crate::config::{ContainerConfig, Rootfs};
        let t = tempfile::tempdir().unwrap();
        let (root, lx) = (t.path().join("cache"), t.path().join("lxc"));
        let deb = fixtures::download(&root, "debian", "bookworm", "b1", None);
        let lowers = root.join("lowers/download/debian/bookworm/amd64/default");
        for b in ["b0", "b00", "b1"] {
            fs::create_dir_all(lowers.join(b).join("etc")).unwrap();
        }
        let cfg = ContainerConfig {
            rootfs: Rootfs::overlay(lowers.join("b00")),
            ..ContainerConfig::default()
        };
        fs::create_dir_all(lx.join("web1")).unwrap();
        cfg.save(&lx.join("web1/config.toml")).unwrap();
        let cat = Catalog::new(&root).with_containers_in(&lx);
        let r = prune(&cat, false).unwrap();
        let swept: Vec<_> = r.leftovers.iter().map(|l| l.path.clone()).collect();
        assert_eq!(swept, [lowers.join("b0")]);
        assert!(lowers.join("b00").is_dir() && lowers.join("b1").is_dir());

        let r = remove(&cat, &refs(&["debian/bookworm"]), Duration::ZERO, &Quiet).unwrap();
        assert!(r.removed.is_empty());
        let msg = r.busy[0].to_string();
        assert!(msg.contains("overlay lower of container web1"), "{msg}");
        assert!(deb.is_dir() && lowers.join("b00").is_dir());
        fs::remove_dir_all(lx.join("web1")).unwrap();
        let r = remove(&cat, &refs(&["debian/bookworm"]), Duration::ZERO, &Quiet).unwrap();
        assert_eq!(r.removed.len(), 1);
        assert!(!deb.exists() && !lowers.exists());
    }
}
