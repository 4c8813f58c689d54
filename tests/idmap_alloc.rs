//! Host ids for unprivileged containers, end to end: each create with an `[idmap]` in its
//! defaults gets ids of its own from root's ranges (files of the test's own, named in
//! rlxc.toml: the real /etc/subuid is never touched), written into its config; copies,
//! clones, snapshots made containers and imports get new ones; concurrent creates never
//! share; root without a range is told what to add (or `--allocate` adds it); overlapping
//! hand-written maps are refused; rlxc-checkconfig reports it all.

mod common;

use common::rt::unique;
use common::*;
use std::path::PathBuf;

const ROOT: &str = "root:1000000:1000000000\n";

/// An installation with no server, its own subuid/subgid files, a local image's
/// archives, and two defaults files: unprivileged (`[idmap]`) and privileged.
struct Ids {
    env: Env,
}

impl Ids {
    fn new(subuid: &str, subgid: &str) -> Ids {
        let env = Env::new("http://127.0.0.1:9");
        let p = env.dir.path();
        std::fs::write(p.join("subuid"), subuid).unwrap();
        std::fs::write(p.join("subgid"), subgid).unwrap();
        std::fs::write(p.join("meta.tar"), default_meta()).unwrap();
        std::fs::write(p.join("rootfs.tar"), small_rootfs().finish()).unwrap();
        let net = "[[network]]\ntype = \"empty\"\n";
        std::fs::write(p.join("unpriv.toml"), format!("[idmap]\n{net}")).unwrap();
        std::fs::write(p.join("priv.toml"), net).unwrap();
        let ids = Ids { env };
        ids.config("");
        ids
    }

    /// rlxc.toml naming the test's id files, `extra` at its top.
    fn config(&self, extra: &str) {
        let p = self.env.dir.path();
        self.env.write_config(&format!(
            "{extra}\n[idmap]\nsubuid = \"{}\"\nsubgid = \"{}\"\n",
            p.join("subuid").display(),
            p.join("subgid").display()
        ));
    }

    fn path(&self, f: &str) -> PathBuf {
        self.env.dir.path().join(f)
    }

    fn create_args(&self, name: &str, defaults: &str, extra: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = ["create", "-t", "local", "-n", name, "-f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(self.path(defaults).display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(["--", "--metadata"].map(String::from));
        v.push(self.path("meta.tar").display().to_string());
        v.push("--fstree".into());
        v.push(self.path("rootfs.tar").display().to_string());
        v
    }

    fn create(&self, name: &str, defaults: &str, extra: &[&str]) -> std::process::Output {
        let args = self.create_args(name, defaults, extra);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        self.env.run(&args)
    }

    /// The (uid, gid, count) a container's config maps, None when privileged.
    fn idmap(&self, name: &str) -> Option<(u64, u64, u64)> {
        let text = read(self.env.lxcpath().join(name).join("config.toml"));
        let v: toml::Value = toml::from_str(&text).unwrap();
        let m = v.get("idmap")?;
        let n = |k: &str| m.get(k).and_then(|x| x.as_integer()).unwrap() as u64;
        Some((
            n("uid"),
            n("gid"),
            m.get("count").map_or(65536, |_| n("count")),
        ))
    }
}

fn assert_created(out: &std::process::Output) -> String {
    assert!(out.status.success(), "create failed: {}", stderr(out));
    stderr(out)
}

#[test]
fn creates_get_disjoint_slices_of_their_own_and_privileged_gets_none() {
    let ids = Ids::new(ROOT, ROOT);
    let (a, b, p) = (unique("ida"), unique("idb"), unique("idp"));
    let err = assert_created(&ids.create(&a, "unpriv.toml", &[]));
    assert!(
        err.contains("privileged: no, ids 1000000-1065535 -> 0-65535\n"),
        "{err}"
    );
    assert_created(&ids.create(&b, "unpriv.toml", &[]));
    assert_eq!(ids.idmap(&a), Some((1_000_000, 1_000_000, 65536)));
    assert_eq!(ids.idmap(&b), Some((1_065_536, 1_065_536, 65536)));
    let info = ids.env.ok(&["info", "-n", &b]);
    assert!(
        info.contains("no, ids 1065536-1131071 -> 0-65535"),
        "{info}"
    );

    // --privileged: no [idmap], whatever the defaults say; not with --allocate.
    let err = assert_created(&ids.create(&p, "unpriv.toml", &["--privileged"]));
    assert!(!err.contains("privileged:"), "{err}");
    assert_eq!(ids.idmap(&p), None);
    let e = stderr(&ids.create("x", "unpriv.toml", &["--privileged", "--allocate"]));
    assert!(e.contains("cannot be used with"), "{e}");
    // Defaults without [idmap]: privileged, as before.
    let q = unique("idq");
    assert_created(&ids.create(&q, "priv.toml", &[]));
    assert_eq!(ids.idmap(&q), None);
    // The subid files were only read.
    assert_eq!(
        (read(ids.path("subuid")), read(ids.path("subgid"))),
        (ROOT.into(), ROOT.into())
    );
}

#[test]
fn the_shipped_defaults_make_new_containers_unprivileged() {
    let ids = Ids::new(ROOT, ROOT);
    // No defaults file in the installation: rlxc's own copy of config/default.toml.
    let args = ids.create_args("x", "priv.toml", &[]);
    let (a, p) = (unique("idd"), unique("iddp"));
    let no_f = |name: &str, more: &[&str]| {
        let mut v: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        v.retain(|s| !s.ends_with("priv.toml") && *s != "-f");
        v[4] = name;
        v.splice(5..5, more.iter().copied());
        ids.env.run(&v)
    };
    let err = assert_created(&no_f(&a, &[]));
    assert!(
        err.contains("privileged: no, ids 1000000-1065535 -> 0-65535"),
        "{err}"
    );
    assert_eq!(ids.idmap(&a), Some((1_000_000, 1_000_000, 65536)));
    assert_created(&no_f(&p, &["--privileged"]));
    assert_eq!(ids.idmap(&p), None);
}

#[test]
fn copies_clones_snapshots_and_imports_get_new_slices() {
    let ids = Ids::new(ROOT, ROOT);
    let src = unique("idsrc");
    assert_created(&ids.create(&src, "unpriv.toml", &[]));
    let (copy, clone, snap, imp) = (
        unique("idcp"),
        unique("idcl"),
        unique("idsn"),
        unique("idim"),
    );
    ids.env.ok(&["copy", "-n", &src, "-N", &copy]);
    ids.env.ok(&["snapshot", "-n", &src]);
    ids.env
        .ok(&["snapshot", "-n", &src, "-r", "snap0", "-N", &snap]);
    let archive = ids.path("src.tar.zst");
    ids.env.ok(&[
        "export",
        "-n",
        &src,
        archive.to_str().unwrap(),
        "--snapshots",
    ]);
    ids.env
        .ok(&["import", archive.to_str().unwrap(), "-n", &imp]);
    ids.env.ok(&["copy", "-s", "-n", &src, "-N", &clone]);

    let mut all: Vec<u64> = Vec::new();
    for (name, want) in [
        (&src, 1_000_000),
        (&copy, 1_065_536),
        (&snap, 1_131_072),
        (&imp, 1_196_608),
        (&clone, 1_262_144),
    ] {
        assert_eq!(ids.idmap(name), Some((want, want, 65536)), "{name}");
        all.push(want);
    }
    // The import's snapshot maps the import's ids, not the archive's.
    let snap_cfg = read(ids.env.lxcpath().join(&imp).join("snaps/snap0/config.toml"));
    assert!(snap_cfg.contains("uid = 1196608"), "{snap_cfg}");
    // The clone shares the source's tree as a frozen layer, still root's on disk.
    use std::os::unix::fs::MetadataExt;
    let lower = ids.env.rootfs(&src).join("etc/passwd");
    assert_eq!(std::fs::metadata(lower).unwrap().uid(), 0);
    // A privileged source makes privileged copies.
    let (p, pc) = (unique("idpr"), unique("idprc"));
    assert_created(&ids.create(&p, "priv.toml", &[]));
    ids.env.ok(&["copy", "-n", &p, "-N", &pc]);
    assert_eq!(ids.idmap(&pc), None);
}

#[test]
fn concurrent_creates_get_distinct_slices() {
    let ids = Ids::new(ROOT, ROOT);
    let names: Vec<String> = (0..4).map(|i| unique(&format!("idc{i}"))).collect();
    let children: Vec<_> = names
        .iter()
        .map(|n| {
            let args = ids.create_args(n, "unpriv.toml", &["-q"]);
            ids.env
                .cmd(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        assert_created(&c.wait_with_output().unwrap());
    }
    let mut got: Vec<u64> = names.iter().map(|n| ids.idmap(n).unwrap().0).collect();
    got.sort();
    assert_eq!(got, [1_000_000, 1_065_536, 1_131_072, 1_196_608]);
}

#[test]
fn root_without_a_range_is_told_the_lines_and_allocate_adds_them() {
    let users = "alice:100000:65536\n";
    let ids = Ids::new(users, "");
    let name = unique("idnone");
    let out = ids.create(&name, "unpriv.toml", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    let (uf, gf) = (ids.path("subuid"), ids.path("subgid"));
    assert!(
        err.contains(&format!(
            "root has no range in {}; root has no range in {}",
            uf.display(),
            gf.display()
        )) && err.contains("nothing was created"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "hint: add the line `root:1000000:1000000000` to {} and {}; or create it again with --allocate",
            uf.display(),
            gf.display()
        )),
        "{err}"
    );
    assert!(
        ids.env.lxcpath_entries().is_empty(),
        "{:?}",
        ids.env.lxcpath_entries()
    );
    assert_eq!(read(&uf), users);

    // --allocate appends the line to both files and says so.
    let err = assert_created(&ids.create(&name, "unpriv.toml", &["--allocate"]));
    for f in [&uf, &gf] {
        assert!(
            err.contains(&format!(
                "--allocate: added `root:1000000:1000000000` to {}",
                f.display()
            )),
            "{err}"
        );
    }
    assert_eq!(read(&uf), format!("{users}{ROOT}"));
    assert_eq!(read(&gf), ROOT);
    assert_eq!(ids.idmap(&name), Some((1_000_000, 1_000_000, 65536)));
}

#[test]
fn overlapping_hand_written_maps_are_refused_at_create_and_start() {
    let ids = Ids::new(ROOT, ROOT);
    let (a, b) = (unique("idova"), unique("idovb"));
    assert_created(&ids.create(&a, "unpriv.toml", &[]));
    std::fs::write(
        ids.path("fixed.toml"),
        "[idmap]\nuid = 1065535\ngid = 3000000\n[[network]]\ntype = \"empty\"\n",
    )
    .unwrap();
    let out = ids.create(&b, "fixed.toml", &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "the [idmap] of {b} (uids 1065535-1131070, gids 3000000-3065535) overlaps that of {a}"
        )) && err.contains("nothing was created")
            && err.contains(&format!("rlxc-info -n {a}")),
        "{err}"
    );
    assert!(!ids.env.lxcpath().join(&b).exists());
    // Clear of a's ids it is used as written; edited to overlap, it does not start.
    std::fs::write(
        ids.path("fixed.toml"),
        "[idmap]\nuid = 1065536\ngid = 3000000\n[[network]]\ntype = \"empty\"\n",
    )
    .unwrap();
    assert_created(&ids.create(&b, "fixed.toml", &[]));
    assert_eq!(ids.idmap(&b), Some((1_065_536, 3_000_000, 65536)));
    let cfg = ids.env.lxcpath().join(&b).join("config.toml");
    std::fs::write(&cfg, read(&cfg).replace("uid = 1065536", "uid = 1000001")).unwrap();
    let err = ids.env.fails(&["start", "-d", "-n", &b]);
    assert!(
        err.contains(&format!("overlaps that of {a}")) && err.contains("it was not started"),
        "{err}"
    );
}

#[test]
fn checkconfig_reports_namespaces_root_ranges_and_idmapped_mounts() {
    let ids = Ids::new(ROOT, "");
    let a = unique("idck");
    assert_created(&ids.create(&a, "priv.toml", &[]));
    // Unprivileged defaults (the shipped ones): root's missing subgid range is a problem.
    let out = ids.env.run(&["checkconfig"]);
    let gf = ids.path("subgid").display().to_string();
    let missing = line_of(&stdout(&out), &format!("Root's ids in {gf}"));
    assert!(
        missing.ends_with("MISSING: none: add the line `root:1000000:1000000000` (rlxc-create --allocate adds it)"),
        "{missing}"
    );
    assert!(!out.status.success(), "a problem found exits non-zero");
    // Privileged defaults: the same lack is a fact, not a problem.
    std::fs::write(
        ids.env.dir.path().join("default.toml"),
        "[[network]]\ntype = \"empty\"\n",
    )
    .unwrap();
    let out = ids.env.run(&["checkconfig"]);
    let text = stdout(&out);
    let line = |start: &str| line_of(&text, start);
    assert!(
        text.contains("--- User namespaces (unprivileged containers) ---"),
        "{text}"
    );
    assert!(
        line("User namespaces for containers").contains("ok: up to"),
        "{text}"
    );
    let uf = ids.path("subuid").display().to_string();
    let gf = ids.path("subgid").display().to_string();
    assert!(
        line(&format!("Root's ids in {uf}"))
            .ends_with("ok: 1000000-1000999999: room for 15258 more containers of 65536 ids"),
        "{text}"
    );
    assert!(
        line(&format!("Root's ids in {gf}")).ends_with(
            "none: add the line `root:1000000:1000000000` (rlxc-create --allocate adds it) \
             (needed for unprivileged containers)"
        ),
        "{text}"
    );
    let fs = std::process::Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(ids.env.dir.path())
        .output()
        .unwrap();
    let fs = stdout(&fs).trim().to_string();
    let mounts = line("Idmapped mounts (lxcpath)");
    if ["ext2/ext3", "xfs", "btrfs", "tmpfs"].contains(&fs.as_str()) {
        assert!(
            mounts.contains(" ok: ") && mounts.contains(ids.env.dir.path().to_str().unwrap()),
            "{mounts}"
        );
    }
    assert!(line("newuidmap").contains("not needed"), "{text}");

    // Unprivileged defaults: the same lack is a problem, counted in the exit code.
    let missing = |t: &str| t.lines().filter(|l| l.contains(" MISSING")).count();
    let before = missing(&text);
    ids.config(&format!(
        "defaults = \"{}\"",
        ids.path("unpriv.toml").display()
    ));
    let out = ids.env.run(&["checkconfig"]);
    let text = stdout(&out);
    assert!(
        line_of(&text, &format!("Root's ids in {gf}")).contains("MISSING: none: add the line"),
        "{text}"
    );
    assert_eq!(missing(&text), before + 1, "{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
}

fn line_of(text: &str, start: &str) -> String {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line {start:?} in:\n{text}"))
        .to_string()
}
