//! Everything a rootfs tree is, as comparable data: per path its type, mode, owner,
//! size (not for directories: theirs depends on their history), mtime, link target,
//! device number and extended attributes (ACLs and file capabilities are xattrs), and
//! the hardlink groups. Two trees that should be the same tree compare equal.

use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

#[derive(Debug, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<String, String>,
    /// Paths sharing an inode, each group sorted, the groups sorted.
    pub hardlinks: Vec<Vec<String>>,
    /// `getfattr -d -m -` of every path (xattrs, ACLs, security.capability).
    pub xattrs: String,
}

pub fn snapshot(root: &Path) -> Tree {
    let mut entries = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    walk(root, root, &mut entries, &mut inodes);
    let mut hardlinks: Vec<Vec<String>> = inodes
        .into_values()
        .filter(|v| v.len() > 1)
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    hardlinks.sort();
    Tree {
        entries,
        hardlinks,
        xattrs: xattr_dump(root),
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut BTreeMap<String, String>,
    inodes: &mut BTreeMap<u64, Vec<String>>,
) {
    let rel = dir
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    out.insert(format!("./{rel}"), describe(dir));
    let mut names: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let p = e.path();
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.is_dir() {
            walk(root, &p, out, inodes);
            continue;
        }
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        if md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(rel.clone());
        }
        out.insert(format!("./{rel}"), describe(&p));
    }
}

fn describe(p: &Path) -> String {
    let md = std::fs::symlink_metadata(p).unwrap();
    let t = md.file_type();
    let (kind, extra) = if t.is_dir() {
        ("d", String::new())
    } else if t.is_symlink() {
        (
            "l",
            std::fs::read_link(p)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        )
    } else if t.is_char_device() || t.is_block_device() {
        ("c/b", format!("rdev {}", md.rdev()))
    } else if t.is_fifo() {
        ("p", String::new())
    } else if t.is_socket() {
        ("s", String::new())
    } else {
        ("f", format!("size {} nlink {}", md.size(), md.nlink()))
    };
    format!(
        "{kind} {:o} {}:{} mtime {}.{:09} {extra}",
        md.mode(),
        md.uid(),
        md.gid(),
        md.mtime(),
        md.mtime_nsec()
    )
}

fn xattr_dump(root: &Path) -> String {
    let out = Command::new("getfattr")
        .args(["-R", "-P", "-h", "-d", "-m", "-", "-e", "hex", "."])
        .current_dir(root)
        .output()
        .expect("getfattr (package attr)");
    assert!(
        out.status.success() || out.stderr.is_empty(),
        "getfattr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One block per file, in readdir order: sorted, two copies of a tree compare equal
    // whatever order their directories list files in.
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blocks: Vec<&str> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .collect();
    blocks.sort();
    blocks.join("\n\n")
}

/// The first difference between two trees, for a readable failure.
pub fn first_difference(a: &Tree, b: &Tree) -> Option<String> {
    for (k, v) in &a.entries {
        match b.entries.get(k) {
            None => return Some(format!("{k} only in the first tree")),
            Some(w) if w != v => return Some(format!("{k}: {v}  vs  {w}")),
            _ => {}
        }
    }
    if let Some(k) = b.entries.keys().find(|k| !a.entries.contains_key(*k)) {
        return Some(format!("{k} only in the second tree"));
    }
    if a.hardlinks != b.hardlinks {
        return Some(format!(
            "hardlink groups differ: {:?} vs {:?}",
            a.hardlinks, b.hardlinks
        ));
    }
    if a.xattrs != b.xattrs {
        let la: Vec<&str> = a.xattrs.lines().collect();
        let lb: Vec<&str> = b.xattrs.lines().collect();
        let i = la.iter().zip(&lb).position(|(x, y)| x != y).unwrap_or(0);
        return Some(format!(
            "xattrs differ at line {i}: {:?} vs {:?}",
            la.get(i),
            lb.get(i)
        ));
    }
    None
}

/// Both trees alike in every attribute, but for the files in `except`.
pub fn assert_same_tree(a: &Path, b: &Path, except: &[&str]) {
    let (mut ta, mut tb) = (snapshot(a), snapshot(b));
    for t in [&mut ta, &mut tb] {
        for e in except {
            t.entries.remove(*e);
            t.xattrs = drop_file(&t.xattrs, e);
        }
    }
    assert!(ta.entries.len() > 10, "{} is not a rootfs", a.display());
    if let Some(d) = first_difference(&ta, &tb) {
        panic!("{} and {} differ: {d}", a.display(), b.display());
    }
    assert_eq!(ta, tb);
}

/// `getfattr` output without the block of `path`.
pub fn drop_file(dump: &str, path: &str) -> String {
    dump.split("\n\n")
        .filter(|b| !b.starts_with(&format!("# file: {path}\n")))
        .collect::<Vec<_>>()
        .join("\n\n")
}
