//! Which template `-t NAME` means. In order: the built-ins (`download`, `local`,
//! `image`: a published image); an
//! executable `rlxc-NAME` in rlxc's template directories (the sysadmin's `templates_path`
//! first, so a site's own version of a template wins over the shipped one, then
//! `PREFIX/share/rlxc/templates`, then `/usr/share/rlxc/templates`); LXC's own
//! `/usr/share/lxc/templates/lxc-NAME` when LXC is installed. `-t PATH` (anything with a
//! `/`) runs that file.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::SystemConfig;
use crate::error::{Error, Result};

/// Where LXC keeps its template scripts.
pub const LXC_TEMPLATES: &str = "/usr/share/lxc/templates";

const BUILTINS: [&str; 4] = ["download", "local", "image", "oci"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Builtin,
    Rlxc,
    Lxc,
    Path,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Origin::Builtin => "built-in",
            Origin::Rlxc => "rlxc",
            Origin::Lxc => "lxc",
            Origin::Path => "path",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    Download,
    Local,
    /// A published image (`rlxc-publish`).
    Image,
    /// An OCI image (`-t oci`).
    Oci,
    /// An executable speaking LXC's template protocol.
    Script {
        name: String,
        path: PathBuf,
        origin: Origin,
    },
}

/// A template `rlxc-create --list-templates` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Available {
    pub name: String,
    pub origin: Origin,
    pub path: Option<PathBuf>,
}

/// rlxc's template directories, in the order they are searched.
pub fn search_dirs(sys: &SystemConfig) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = sys.templates_path.clone();
    if let Some(prefix) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(Path::to_path_buf))
    {
        dirs.push(prefix.join("share/rlxc/templates"));
    }
    dirs.push("/usr/share/rlxc/templates".into());
    let mut seen = Vec::new();
    dirs.retain(|d| {
        let fresh = !seen.contains(d);
        seen.push(d.clone());
        fresh
    });
    dirs
}

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A template name: what may follow `rlxc-` in a file name.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// What `-t name` means, searching `dirs` and then `lxc_dir`.
pub fn resolve(name: &str, dirs: &[PathBuf], lxc_dir: &Path) -> Result<Resolved> {
    match name {
        "download" => return Ok(Resolved::Download),
        "local" => return Ok(Resolved::Local),
        "image" => return Ok(Resolved::Image),
        "oci" => return Ok(Resolved::Oci),
        _ => {}
    }
    if name.contains('/') {
        return script_at(Path::new(name));
    }
    if !is_plain_name(name) {
        return Err(Error::Usage(format!(
            "{name:?} is not a template name (letters, digits, '-', '_' and '.'); \
             to run a template file, give its path"
        )));
    }
    let candidates = dirs
        .iter()
        .map(|d| (d.join(format!("rlxc-{name}")), Origin::Rlxc))
        .chain([(lxc_dir.join(format!("lxc-{name}")), Origin::Lxc)]);
    for (path, origin) in candidates {
        if is_executable(&path) {
            return Ok(Resolved::Script {
                name: name.to_string(),
                path,
                origin,
            });
        }
    }
    let names: Vec<String> = available(dirs, lxc_dir)
        .into_iter()
        .map(|a| a.name)
        .collect();
    Err(Error::Usage(format!(
        "no template {name:?}: looked for rlxc-{name} in {} and lxc-{name} in {}. \
         Templates here: {}. rlxc-create --list-templates shows where each one is",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        lxc_dir.display(),
        names.join(", ")
    )))
}

fn script_at(path: &Path) -> Result<Resolved> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::Usage(format!("template file {}: {e}", path.display())))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::Usage(format!(
            "template file {} is not an executable file (chmod +x it, or name a template)",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    Ok(Resolved::Script {
        name,
        path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
        origin: Origin::Path,
    })
}

/// Every template `-t NAME` can reach, the one that wins first, each name once.
pub fn available(dirs: &[PathBuf], lxc_dir: &Path) -> Vec<Available> {
    let mut out: Vec<Available> = BUILTINS
        .iter()
        .map(|n| Available {
            name: n.to_string(),
            origin: Origin::Builtin,
            path: None,
        })
        .collect();
    let sources = dirs
        .iter()
        .map(|d| (d.as_path(), "rlxc-", Origin::Rlxc))
        .chain([(lxc_dir, "lxc-", Origin::Lxc)]);
    for (dir, prefix, origin) in sources {
        for (name, path) in scripts_in(dir, prefix) {
            if !out.iter().any(|a| a.name == name) {
                out.push(Available {
                    name,
                    origin,
                    path: Some(path),
                });
            }
        }
    }
    out
}

/// `PREFIX*` executables in `dir`, sorted by name.
fn scripts_in(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_str()?.to_string();
            let name = file.strip_prefix(prefix)?.to_string();
            (is_plain_name(&name) && is_executable(&e.path())).then(|| (name, e.path()))
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, file: &str) -> PathBuf {
        let p = dir.join(file);
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn builtins_then_rlxc_dirs_in_order_then_lxc() {
        let t = tempfile::tempdir().unwrap();
        let (site, shipped, lxc) = (t.path().join("a"), t.path().join("b"), t.path().join("l"));
        for d in [&site, &shipped, &lxc] {
            std::fs::create_dir(d).unwrap();
        }
        let mine = script(&site, "rlxc-busybox");
        script(&shipped, "rlxc-busybox");
        let deb = script(&shipped, "rlxc-debian");
        let lxc_bb = script(&lxc, "lxc-busybox");
        let lxc_alpine = script(&lxc, "lxc-alpine");
        std::fs::write(shipped.join("rlxc-notexec"), "x").unwrap();
        let dirs = [site.clone(), shipped.clone()];

        assert_eq!(
            resolve("download", &dirs, &lxc).unwrap(),
            Resolved::Download
        );
        assert_eq!(resolve("local", &dirs, &lxc).unwrap(), Resolved::Local);
        assert_eq!(resolve("image", &dirs, &lxc).unwrap(), Resolved::Image);
        let path_of = |n: &str| match resolve(n, &dirs, &lxc).unwrap() {
            Resolved::Script { path, origin, .. } => (path, origin),
            other => panic!("{other:?}"),
        };
        assert_eq!(path_of("busybox"), (mine, Origin::Rlxc));
        assert_eq!(path_of("debian"), (deb, Origin::Rlxc));
        assert_eq!(path_of("alpine"), (lxc_alpine, Origin::Lxc));
        assert_eq!(path_of(lxc_bb.to_str().unwrap()).1, Origin::Path);

        let err = resolve("notexec", &dirs, &lxc).unwrap_err().to_string();
        assert!(err.contains("no template \"notexec\""), "{err}");
        assert!(
            err.contains("download, local, image, oci, busybox, debian, alpine"),
            "{err}"
        );
        let names: Vec<_> = available(&dirs, &lxc).into_iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            ["download", "local", "image", "oci", "busybox", "debian", "alpine"]
        );
    }

    #[test]
    fn odd_names_and_paths_are_refused_with_the_reason() {
        let t = tempfile::tempdir().unwrap();
        let e = resolve("../x", &[], t.path()).unwrap_err().to_string();
        assert!(e.contains("template file ../x"), "{e}");
        let e = resolve("-x", &[], t.path()).unwrap_err().to_string();
        assert!(e.contains("is not a template name"), "{e}");
        let f = t.path().join("plain");
        std::fs::write(&f, "x").unwrap();
        let e = resolve(f.to_str().unwrap(), &[], t.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not an executable file"), "{e}");
    }
}
