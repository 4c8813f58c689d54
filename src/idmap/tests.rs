use super::*;

/// An installation in a temp dir: its lxcpath and its own subuid and subgid files.
struct Host {
    _dir: tempfile::TempDir,
    sys: SystemConfig,
}

impl Host {
    fn new(subuid: &str, subgid: &str) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("subuid"), subuid).unwrap();
        std::fs::write(p.join("subgid"), subgid).unwrap();
        let f = p.join("rlxc.toml");
        std::fs::write(
            &f,
            format!(
                "lxcpath = \"{0}/lib\"\n[idmap]\nsubuid = \"{0}/subuid\"\nsubgid = \"{0}/subgid\"\n",
                p.display()
            ),
        )
        .unwrap();
        let sys = SystemConfig::from_file(&f).unwrap();
        std::fs::create_dir(&sys.lxcpath).unwrap();
        Host { _dir: dir, sys }
    }

    fn container(&self, name: &str, config: &str) {
        let d = self.sys.lxcpath.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.toml"), config).unwrap();
    }

    fn snapshot(&self, name: &str, snap: &str, config: &str) {
        let d = self.sys.lxcpath.join(name).join("snaps").join(snap);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("config.toml"), config).unwrap();
    }

    /// What a create of `name` from `idmap` gets, the ids written as a container's
    /// config (as create does before it publishes).
    fn create(&self, name: &str, idmap: Option<&IdMap>, allocate: bool) -> Result<Option<IdMap>> {
        let (plan, _) = Plan::new(&self.sys, name, idmap, Origin::Create { allocate })?;
        let taken = plan.take(&self.sys)?;
        let config = match &taken.idmap {
            Some(m) => format!("[idmap]\n{}", toml::to_string(m).unwrap()),
            None => String::new(),
        };
        self.container(name, &config);
        Ok(taken.idmap)
    }

    fn file(&self, which: &str) -> String {
        std::fs::read_to_string(self._dir.path().join(which)).unwrap()
    }
}

fn unprivileged() -> IdMap {
    IdMap::default()
}

fn map(uid: u32, gid: u32, count: u32) -> IdMap {
    IdMap {
        uid: Some(uid),
        gid: Some(gid),
        count,
    }
}

const ROOT: &str = "root:1000000:1000000000\n";

#[test]
fn each_container_gets_the_lowest_free_slice_of_its_own() {
    let h = Host::new(ROOT, "alice:100000:65536\nroot:2000000:1000000\n");
    assert_eq!(
        h.create("a", Some(&unprivileged()), false).unwrap(),
        Some(map(1_000_000, 2_000_000, 65536))
    );
    assert_eq!(
        h.create("b", Some(&unprivileged()), false).unwrap(),
        Some(map(1_065_536, 2_065_536, 65536))
    );
    // A privileged container takes nothing.
    assert_eq!(h.create("p", None, false).unwrap(), None);
    // Another container's snapshot keeps its ids, as do hand-written maps.
    h.snapshot("p", "snap0", "[idmap]\nuid = 1131072\ngid = 2131072\n");
    h.container("odd", "[idmap]\nuid = 1200000\ngid = 2200000\ncount = 10\n");
    let c = h
        .create("c", Some(&unprivileged()), false)
        .unwrap()
        .unwrap();
    assert_eq!((c.uid, c.gid), (Some(1_200_010), Some(2_200_010)));
    // A smaller count fits in the hole before `odd`.
    let small = IdMap {
        count: 1000,
        ..unprivileged()
    };
    let d = h.create("d", Some(&small), false).unwrap().unwrap();
    assert_eq!(
        (d.uid, d.gid, d.count),
        (Some(1_196_608), Some(2_196_608), 1000)
    );
    // A destroyed container's ids are free again.
    std::fs::remove_dir_all(h.sys.lxcpath.join("a")).unwrap();
    let e = h
        .create("e", Some(&unprivileged()), false)
        .unwrap()
        .unwrap();
    assert_eq!(e.uid, Some(1_000_000));
}

#[test]
fn host_root_is_never_given_out() {
    let h = Host::new("root:0:131072\n", "0:0:65537\n");
    let m = h
        .create("a", Some(&unprivileged()), false)
        .unwrap()
        .unwrap();
    assert_eq!((m.uid, m.gid), (Some(1), Some(1)));
    assert!(m.check(true).is_ok());
}

#[test]
fn a_copy_gets_its_own_ids_whatever_its_source_maps() {
    let h = Host::new(ROOT, ROOT);
    h.container(
        "src",
        "[idmap]\nuid = 1000000\ngid = 1000000\ncount = 100\n",
    );
    let (plan, added) = Plan::new(&h.sys, "dst", Some(&map(1, 1, 100)), Origin::Copy).unwrap();
    assert!(added.is_empty());
    let taken = plan.take(&h.sys).unwrap();
    assert_eq!(taken.idmap, Some(map(1_000_100, 1_000_100, 100)));
    let (plan, _) = Plan::new(&h.sys, "dst", None, Origin::Copy).unwrap();
    assert!(plan.take(&h.sys).unwrap().idmap.is_none());
}

#[test]
fn exhausted_ranges_are_refused_naming_the_file_and_its_users() {
    let h = Host::new("root:1000000:131072\n", ROOT);
    h.create("a", Some(&unprivileged()), false).unwrap();
    h.create("b", Some(&unprivileged()), false).unwrap();
    let e = h.create("c", Some(&unprivileged()), false).unwrap_err();
    let (msg, fix) = (e.to_string(), e.hint().unwrap());
    let subuid = h.sys.subid.subuid.display().to_string();
    assert!(
        msg.contains(&format!(
            "root's ranges in {subuid} (1000000-1131071) have no 65536 ids left"
        )) && msg.contains("(used by a, b)")
            && msg.ends_with(
                "c gets no host ids of its own as an unprivileged container; nothing was created"
            ),
        "{msg}"
    );
    assert!(!msg.contains("subgid"), "only the short file: {msg}");
    // The suggested range overlaps no line of the file it is for.
    assert!(
        fix.starts_with(&format!("add the line `root:1131072:1000000000` to {subuid}; or create it again with --allocate")),
        "{fix}"
    );
    assert!(!h.sys.lxcpath.join("c").exists());
}

#[test]
fn root_without_a_range_is_told_the_line_and_allocate_adds_it() {
    let users = "alice:100000:65536\nbob:1000000:65536\n";
    let h = Host::new(users, "");
    let e = h.create("a", Some(&unprivileged()), false).unwrap_err();
    let (msg, fix) = (e.to_string(), e.hint().unwrap());
    let (uf, gf) = (&h.sys.subid.subuid, &h.sys.subid.subgid);
    assert!(
        msg.starts_with(&format!(
            "root has no range in {}; root has no range in {}: a gets",
            uf.display(),
            gf.display()
        )),
        "{msg}"
    );
    assert!(
        fix.starts_with(&format!(
            "add the line `root:1065536:1000000000` to {} and {}",
            uf.display(),
            gf.display()
        )),
        "{fix}"
    );
    assert_eq!(
        (h.file("subuid"), h.file("subgid")),
        (users.to_string(), String::new())
    );

    // --allocate appends that line to both, and the container gets its first ids.
    let (plan, added) = Plan::new(
        &h.sys,
        "a",
        Some(&unprivileged()),
        Origin::Create { allocate: true },
    )
    .unwrap();
    let line = "root:1065536:1000000000";
    assert_eq!(
        added,
        [
            Added {
                file: uf.clone(),
                line: line.into()
            },
            Added {
                file: gf.clone(),
                line: line.into()
            }
        ]
    );
    assert_eq!(h.file("subuid"), format!("{users}{line}\n"));
    assert_eq!(h.file("subgid"), format!("{line}\n"));
    assert_eq!(
        plan.take(&h.sys).unwrap().idmap,
        Some(map(1_065_536, 1_065_536, 65536))
    );
    // With room, --allocate adds nothing.
    let (_, added) = Plan::new(
        &h.sys,
        "b",
        Some(&unprivileged()),
        Origin::Create { allocate: true },
    )
    .unwrap();
    assert!(added.is_empty());
    assert_eq!(h.file("subgid"), format!("{line}\n"));
}

#[test]
fn a_copy_is_not_offered_allocate() {
    let h = Host::new("", "");
    let e = Plan::new(&h.sys, "cp", Some(&map(5, 5, 5)), Origin::Copy).unwrap_err();
    let fix = e.hint().unwrap();
    assert!(
        fix.ends_with("(rlxc-create --allocate adds such a line)"),
        "{fix}"
    );
}

#[test]
fn overlapping_hand_written_maps_are_refused_naming_both() {
    let h = Host::new(ROOT, ROOT);
    h.container("web1", "[idmap]\nuid = 1000000\ngid = 1000000\n");
    h.container("old", "");
    h.snapshot("old", "snap3", "[idmap]\nuid = 3000000\ngid = 3000000\n");
    let e = h
        .create("web2", Some(&map(1_065_535, 5_000_000, 65536)), false)
        .unwrap_err();
    let (msg, fix) = (e.to_string(), e.hint().unwrap());
    assert_eq!(
        msg,
        "the [idmap] of web2 (uids 1065535-1131070, gids 5000000-5065535) overlaps that of \
         web1 (uids 1000000-1065535, gids 1000000-1065535): two containers would share host \
         ids; nothing was created"
    );
    assert!(fix.contains("rlxc-info -n web1"), "{fix}");
    // Groups alone overlapping count too, and a snapshot's map is its container's.
    let e = h
        .create("web3", Some(&map(9_000_000, 3_065_535, 1)), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("that of old (snapshot snap3)"), "{e}");
    // Clear of every map, a hand-written one is used as written, in no range of root's.
    assert_eq!(
        h.create("web4", Some(&map(50, 50, 10)), false).unwrap(),
        Some(map(50, 50, 10))
    );
    // At start: web1 edited to overlap web4 is refused; its own snapshots do not count.
    h.snapshot("web4", "snap0", "[idmap]\nuid = 50\ngid = 50\ncount = 10\n");
    assert!(check_unshared(&h.sys, "web4", Some(&map(50, 50, 10))).is_ok());
    let e = check_unshared(&h.sys, "web1", Some(&map(55, 1_000_000, 65536)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[idmap] of web1")
            && e.contains("that of web4")
            && e.ends_with("it was not started"),
        "{e}"
    );
    assert!(check_unshared(&h.sys, "web1", None).is_ok());
}

#[test]
fn the_id_lock_makes_concurrent_allocations_distinct() {
    let h = Host::new(ROOT, ROOT);
    let sys = &h.sys;
    let got: Vec<u32> = std::thread::scope(|s| {
        let all: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    let name = format!("c{i}");
                    let (plan, _) = Plan::new(
                        sys,
                        &name,
                        Some(&unprivileged()),
                        Origin::Create { allocate: false },
                    )
                    .unwrap();
                    let taken = plan.take(sys).unwrap();
                    let m = taken.idmap.clone().unwrap();
                    // Published while the lock is held, as creates do.
                    let d = sys.lxcpath.join(&name);
                    std::fs::create_dir(&d).unwrap();
                    let text = format!("[idmap]\n{}", toml::to_string(&m).unwrap());
                    std::fs::write(d.join("config.toml"), text).unwrap();
                    drop(taken);
                    m.uid.unwrap()
                })
            })
            .collect();
        all.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [1_000_000, 1_065_536, 1_131_072, 1_196_608],
        "{got:?}"
    );
}

#[test]
fn room_counts_what_is_left() {
    let h = Host::new("root:1000000:655360\n", "");
    h.create("a", Some(&unprivileged()), true).unwrap();
    let [u, g] = room(&h.sys, 65536).unwrap();
    assert_eq!((u.ranges.len(), u.fit, u.holders), (1, 9, 1));
    // --allocate gave root a range in subgid only, at its uids' start.
    assert_eq!(g.ranges, [Span::new(1_000_000, 1_000_000_000)]);
    assert_eq!(h.file("subuid"), "root:1000000:655360\n");
    assert!(u.suggest.is_none() && g.suggest.is_none());
    assert_eq!(g.fit, 15258 - 1);
}
