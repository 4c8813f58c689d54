//! `rlxc-info --json`: one object whose keys are a contract for scripts (README, "Output
//! for scripts"). Config tables keep the spelling of config.toml; sizes are bytes,
//! times unix seconds, and what does not apply is null (or an empty list).

use serde::Serialize;
use serde_json::Value;

use crate::config::ContainerConfig;
use crate::container::{Container, State};
use crate::error::{Error, Result};

#[derive(Serialize)]
struct Info {
    name: String,
    state: String,
    /// init's host pid while it runs.
    pid: Option<i32>,
    /// "ok" (answers), "gone" (killed, its processes live on), "unreachable" (another
    /// rlxc's, or hung), null when stopped.
    monitor: Option<&'static str>,
    hostname: String,
    arch: Option<String>,
    image: Value,
    privileged: bool,
    /// `{uid, gid, count}`: host ids uid.. and gid.. are the container's 0..count.
    idmap: Value,
    backing_store: String,
    rootfs: String,
    config: String,
    disk_use: Option<DiskUse>,
    snapshots: Vec<Snapshot>,
    networks: Value,
    ipv4: Vec<String>,
    ipv6: Vec<String>,
    published: Vec<String>,
    cpu_ns: Option<u64>,
    memory_bytes: Option<u64>,
    links: Vec<Link>,
    limits: Value,
    autostart: Value,
    /// An application container's (`init.app`) last exit status; null otherwise.
    exit_status: Option<i32>,
}

#[derive(Serialize)]
struct DiskUse {
    total: u64,
    files: u64,
    snapshots: u64,
}

#[derive(Serialize)]
struct Snapshot {
    name: String,
    taken: i64,
    comment: String,
}

#[derive(Serialize)]
struct Link {
    name: String,
    rx_bytes: u64,
    tx_bytes: u64,
}

fn value<T: Serialize>(what: &str, v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::Other(format!("cannot format {what}: {e}")))
}

pub fn print(c: &Container, cfg: &ContainerConfig) -> Result<()> {
    let state = c.state();
    let live = c.live(&state).unwrap_or_default();
    let monitor = match &state {
        State::Stopped => None,
        State::Running { .. } => Some("ok"),
        State::Orphaned { .. } => Some("gone"),
        State::Unreachable { .. } => Some("unreachable"),
    };
    let backing = c.backing(cfg);
    let info = Info {
        name: c.name.clone(),
        state: state.to_string(),
        pid: matches!(state, State::Running { .. }).then_some(live.pid),
        monitor,
        hostname: cfg.host_name(&c.name),
        arch: cfg.arch.clone(),
        image: value("the image", &cfg.image)?,
        privileged: cfg.idmap.is_none(),
        exit_status: c.exit_status().filter(|_| cfg.init.app),
        idmap: value("the idmap", &cfg.idmap)?,
        backing_store: cfg.rootfs.backend.as_str().into(),
        rootfs: backing.path(&c.dir()).display().to_string(),
        config: c.config_path().display().to_string(),
        disk_use: c.disk_use().ok().map(|u| DiskUse {
            total: u.files + u.snapshots,
            files: u.files,
            snapshots: u.snapshots,
        }),
        snapshots: c
            .snapshots()
            .unwrap_or_default()
            .into_iter()
            .map(|s| Snapshot {
                name: s.name,
                taken: s.taken,
                comment: s.comment,
            })
            .collect(),
        networks: value("the networks", &cfg.networks)?,
        ipv4: live.ipv4,
        ipv6: live.ipv6,
        published: live.published,
        cpu_ns: live.cpu_ns,
        memory_bytes: live.memory_bytes,
        links: live
            .links
            .into_iter()
            .map(|(name, rx_bytes, tx_bytes)| Link {
                name,
                rx_bytes,
                tx_bytes,
            })
            .collect(),
        limits: value("the limits", &cfg.limits)?,
        autostart: value("the autostart settings", &cfg.autostart)?,
    };
    let text = serde_json::to_string_pretty(&info)
        .map_err(|e| Error::Other(format!("cannot format {}'s info: {e}", c.name)))?;
    println!("{text}");
    Ok(())
}
