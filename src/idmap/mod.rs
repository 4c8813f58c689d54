//! Host ids for unprivileged containers. Each new container gets ids of its own (Incus's
//! isolated maps): the lowest run of `count` ids inside root's ranges of `/etc/subuid`
//! (users) and `/etc/subgid` (groups) that no other container of the lxcpath maps, its
//! snapshots' maps included. A map written by hand is used as it is, unless another
//! container's overlaps it.
//!
//! Everything is checked before a container is made (`Plan::new`), so a refusal leaves
//! nothing behind, and the ids are taken only at the end (`Plan::take`) under the
//! lxcpath's id lock (`.locks/.idmap`), held until the new container is published: two
//! containers made at once never get the same ids, and a slow create holds no one up.
//! Root with no room gets a range of its own with `--allocate`.

mod span;
mod subid;
mod taken;

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::config::{IdMap, SubidFiles, SystemConfig};
use crate::error::{Error, Result};
pub use span::Span;
use subid::{ShadowLock, SubidFile};
use taken::Holder;

/// The range `--allocate` gives root, and the id below which it does not look: what
/// Incus and LXD advise (`root:1000000:1000000000`), clear of useradd's ranges.
const ALLOCATE_COUNT: u64 = 1_000_000_000;
const ALLOCATE_FROM: u64 = 1_000_000;

/// How a new container gets its ids; made by `Plan::new`, used by `take`.
#[derive(Debug, Clone)]
pub struct Plan {
    ids: Ids,
    name: String,
    /// The command has `--allocate` (rlxc-create): errors offer it.
    offers_allocate: bool,
}

#[derive(Debug, Clone)]
enum Ids {
    /// No `[idmap]`: privileged.
    Privileged,
    /// Its own `count` ids.
    Allocate { count: u32 },
    /// A map written by hand.
    Given(IdMap),
}

/// A line `--allocate` appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub file: PathBuf,
    pub line: String,
}

/// What the new container of a `Plan` maps, and the id lock, held until it is published.
pub struct Taken {
    pub idmap: Option<IdMap>,
    _lock: Option<Flock<File>>,
}

/// Where a new container's `[idmap]` came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The defaults or `-f` of a create: a map with uid and gid is used as written.
    Create { allocate: bool },
    /// Another container (copy, clone, import, a snapshot made a container): the new
    /// one gets ids of its own, as many.
    Copy,
}

impl Plan {
    /// The ids of new container `name`, whose config has `idmap`, checked against root's
    /// ranges and the lxcpath's containers now; with `--allocate`, root's files get a
    /// range first if it has no room (the lines returned).
    pub fn new(
        sys: &SystemConfig,
        name: &str,
        idmap: Option<&IdMap>,
        origin: Origin,
    ) -> Result<(Plan, Vec<Added>)> {
        let ids = match (idmap, origin) {
            (None, _) => Ids::Privileged,
            (Some(m), Origin::Create { .. }) if m.ranges().is_some() => Ids::Given(m.clone()),
            (Some(m), _) => Ids::Allocate { count: m.count },
        };
        let allocate = origin == Origin::Create { allocate: true };
        let plan = Plan {
            ids,
            name: name.to_string(),
            offers_allocate: matches!(origin, Origin::Create { .. }),
        };
        let mut added = Vec::new();
        match &plan.ids {
            Ids::Privileged => {}
            Ids::Given(m) => refuse_overlap(&plan.name, m, &others(sys, name)?, CREATE_REFUSED)?,
            Ids::Allocate { count } => {
                // One scan of the lxcpath, a second only after --allocate added a range.
                let chosen = plan.choose(sys, *count)?;
                match (chosen, allocate) {
                    (Ok(_), _) => {}
                    (Err(_), true) => {
                        added = give_root_a_range(sys, *count)?;
                        plan.choose(sys, *count)??;
                    }
                    (Err(e), false) => return Err(e),
                }
            }
        }
        Ok((plan, added))
    }

    /// The ids, taken for good: call it last before the container is published, and
    /// keep what it returns until then.
    pub fn take(&self, sys: &SystemConfig) -> Result<Taken> {
        let lock = match self.ids {
            Ids::Privileged => None,
            _ => Some(lock(&sys.lxcpath)?),
        };
        let idmap = match &self.ids {
            Ids::Privileged => None,
            Ids::Given(m) => {
                refuse_overlap(&self.name, m, &others(sys, &self.name)?, CREATE_REFUSED)?;
                Some(m.clone())
            }
            Ids::Allocate { count } => {
                let (uid, gid) = self.choose(sys, *count)??;
                Some(IdMap {
                    uid: Some(uid),
                    gid: Some(gid),
                    count: *count,
                })
            }
        };
        Ok(Taken { idmap, _lock: lock })
    }

    /// The lowest free `count` ids in root's ranges, users' and groups'; the inner
    /// error: root has too few.
    fn choose(&self, sys: &SystemConfig, count: u32) -> Result<Result<(u32, u32)>> {
        let root = RootRanges::read(&sys.subid)?;
        let holders = others(sys, &self.name)?;
        // Host id 0 never: the container's root would be the host's.
        let zero = Span::new(0, 1);
        let uids: Vec<Span> = holders.iter().map(|h| h.uids).chain([zero]).collect();
        let gids: Vec<Span> = holders.iter().map(|h| h.gids).chain([zero]).collect();
        let pick = |f: &SubidFile, taken: &[Span]| {
            span::lowest_free(&f.root(), taken, count.into()).and_then(|s| u32::try_from(s).ok())
        };
        Ok(match (pick(&root.uid, &uids), pick(&root.gid, &gids)) {
            (Some(u), Some(g)) => Ok((u, g)),
            (u, g) => Err(self.shortage(&root, &holders, count, u.is_none(), g.is_none())),
        })
    }

    /// Root has too few free ids in the files named by `uid_short` and `gid_short`.
    fn shortage(
        &self,
        root: &RootRanges,
        holders: &[Holder],
        count: u32,
        uid_short: bool,
        gid_short: bool,
    ) -> Error {
        let short: Vec<&SubidFile> = [(&root.uid, uid_short), (&root.gid, gid_short)]
            .into_iter()
            .filter_map(|(f, s)| s.then_some(f))
            .collect();
        let files = short
            .iter()
            .map(|f| f.path.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ");
        let why: Vec<String> = short
            .iter()
            .map(|f| match f.root().as_slice() {
                [] => format!("root has no range in {}", f.path.display()),
                ranges => format!(
                    "root's ranges in {} ({}) have no {count} ids left that no other \
                     container maps{}",
                    f.path.display(),
                    ranges
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    users(holders)
                ),
            })
            .collect();
        let line = match free_root_range(root, [uid_short, gid_short]) {
            Some(start) => format!("`root:{start}:{ALLOCATE_COUNT}`"),
            None => "root:START:COUNT (COUNT 65536 or more, START where no other line is)".into(),
        };
        let also = if self.offers_allocate {
            "; or create it again with --allocate, which adds it (or with --privileged, \
             for a privileged container)"
        } else {
            " (rlxc-create --allocate adds such a line)"
        };
        Error::Ids {
            msg: format!(
                "{}: {} gets no host ids of its own as an unprivileged container; nothing \
                 was created",
                why.join("; "),
                self.name
            ),
            fix: format!("add the line {line} to {files}{also}"),
        }
    }
}

const CREATE_REFUSED: &str = "nothing was created";

/// ": used by a, b, c" for the containers among `holders`.
fn users(holders: &[Holder]) -> String {
    let mut names: Vec<&str> = holders.iter().map(|h| h.container.as_str()).collect();
    names.dedup();
    match names.len() {
        0 => String::new(),
        n if n <= 5 => format!(" (used by {})", names.join(", ")),
        n => format!(" (used by {} and {} more)", names[..5].join(", "), n - 5),
    }
}

/// Root's ranges as the two files list them.
pub struct RootRanges {
    pub uid: SubidFile,
    pub gid: SubidFile,
}

impl RootRanges {
    pub fn read(files: &SubidFiles) -> Result<Self> {
        Ok(RootRanges {
            uid: SubidFile::read(&files.subuid)?,
            gid: SubidFile::read(&files.subgid)?,
        })
    }
}

/// The START of a line `root:START:1000000000` for the files marked `short` (users',
/// groups'): the lowest from 1000000 that no line of those files overlaps, nor another
/// user's line of the other (so a user's uids and gids stay alike); None when the id
/// space has no such room.
fn free_root_range(root: &RootRanges, short: [bool; 2]) -> Option<u64> {
    let mut avoid = Vec::new();
    for (f, short) in [(&root.uid, short[0]), (&root.gid, short[1])] {
        avoid.extend(if short { f.all() } else { f.others() });
    }
    let space = [Span::new(ALLOCATE_FROM, span::ID_END)];
    span::lowest_free(&space, &avoid, ALLOCATE_COUNT)
}

/// `--allocate`: a range for root appended to each file where it has no room for
/// `count` ids, under shadow's locks on both files. The same start in both, clear of
/// every line of either.
fn give_root_a_range(sys: &SystemConfig, count: u32) -> Result<Vec<Added>> {
    let _uid_lock = ShadowLock::take(&sys.subid.subuid)?;
    let _gid_lock = ShadowLock::take(&sys.subid.subgid)?;
    // Read again under the locks: useradd may have written meanwhile.
    let root = RootRanges::read(&sys.subid)?;
    let holders = others(sys, "")?;
    let uids: Vec<Span> = holders.iter().map(|h| h.uids).collect();
    let gids: Vec<Span> = holders.iter().map(|h| h.gids).collect();
    let short = [(&root.uid, uids), (&root.gid, gids)]
        .map(|(f, taken)| span::lowest_free(&f.root(), &taken, count.into()).is_none());
    let start = free_root_range(&root, short).ok_or_else(|| Error::Ids {
        msg: format!(
            "--allocate: {} and {} leave no {ALLOCATE_COUNT} ids free from {ALLOCATE_FROM} \
             up; nothing was created",
            root.uid.path.display(),
            root.gid.path.display()
        ),
        fix: "add a range for root by hand: a line root:START:COUNT (COUNT 65536 or more) \
              that no other line of either file overlaps"
            .into(),
    })?;
    let line = format!("root:{start}:{ALLOCATE_COUNT}");
    let mut added = Vec::new();
    for (f, short) in [(&root.uid, short[0]), (&root.gid, short[1])] {
        if short {
            subid::append(&f.path, &line)?;
            added.push(Added {
                file: f.path.clone(),
                line: line.clone(),
            });
        }
    }
    Ok(added)
}

/// The maps of every container but `name` (and its snapshots).
fn others(sys: &SystemConfig, name: &str) -> Result<Vec<Holder>> {
    taken::scan(&sys.lxcpath, Some(name))
}

/// A map of `name` that overlaps another container's is refused, naming both; `outcome`
/// says what was (not) done.
fn refuse_overlap(name: &str, m: &IdMap, holders: &[Holder], outcome: &str) -> Result<()> {
    let Some((u, g)) = m.ranges() else {
        return Ok(());
    };
    let (u, g): (Span, Span) = (u.into(), g.into());
    let Some(h) = holders
        .iter()
        .find(|h| h.uids.overlaps(&u) || h.gids.overlaps(&g))
    else {
        return Ok(());
    };
    Err(Error::Ids {
        msg: format!(
            "the [idmap] of {name} (uids {u}, gids {g}) overlaps that of {} (uids {}, gids \
             {}): two containers would share host ids; {outcome}",
            h.who, h.uids, h.gids
        ),
        fix: format!(
            "leave uid and gid out of {name}'s [idmap] and rlxc gives it ids of its own, or \
             choose ids no other container maps (rlxc-info -n {} shows its ids)",
            h.container
        ),
    })
}

/// Before container `name` starts: its map must overlap no other container's (a config
/// edited by hand, a snapshot restored after its ids were given to another).
pub fn check_unshared(sys: &SystemConfig, name: &str, idmap: Option<&IdMap>) -> Result<()> {
    match idmap {
        Some(m) if m.ranges().is_some() => {
            refuse_overlap(name, m, &others(sys, name)?, "it was not started")
        }
        _ => Ok(()),
    }
}

/// The lxcpath's id lock, waited for: allocations are quick.
fn lock(lxcpath: &Path) -> Result<Flock<File>> {
    let (f, path) = crate::store::open_lock_file(lxcpath, ".idmap")?;
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| Error::io("lock", &path, e.into()))
}

/// Root's ranges for rlxc-checkconfig: per file, what root has and how many more
/// containers of `count` ids fit beside those of the lxcpath.
pub struct Room {
    pub file: PathBuf,
    pub ranges: Vec<Span>,
    pub fit: u64,
    /// Containers of the lxcpath (and snapshots) that map ids in this file's ranges.
    pub holders: usize,
    /// When no container fits: a line for root to add, clear of other lines.
    pub suggest: Option<String>,
}

pub fn room(sys: &SystemConfig, count: u32) -> Result<[Room; 2]> {
    let root = RootRanges::read(&sys.subid)?;
    let holders = taken::scan(&sys.lxcpath, None)?;
    let room = |f: &SubidFile, taken: Vec<Span>| {
        let ranges = f.root();
        Room {
            file: f.path.clone(),
            fit: span::slices_free(&ranges, &taken, count.into()),
            holders: taken
                .iter()
                .filter(|t| ranges.iter().any(|r| r.overlaps(t)))
                .count(),
            ranges,
            suggest: None,
        }
    };
    let mut rooms = [
        room(&root.uid, holders.iter().map(|h| h.uids).collect()),
        room(&root.gid, holders.iter().map(|h| h.gids).collect()),
    ];
    let short = [rooms[0].fit == 0, rooms[1].fit == 0];
    let line = free_root_range(&root, short).map(|start| format!("root:{start}:{ALLOCATE_COUNT}"));
    for (r, short) in rooms.iter_mut().zip(short) {
        r.suggest = line.clone().filter(|_| short);
    }
    Ok(rooms)
}

#[cfg(test)]
mod tests;
