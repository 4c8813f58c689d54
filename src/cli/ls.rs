//! rlxc-ls: container names, a table with -f / -F, or JSON; LXC's filters (state
//! flags, a regex on the name, autostart groups).

use std::cell::OnceCell;
use std::io::IsTerminal;

use serde_json::{json, Value};

use super::Common;
use crate::config::ContainerConfig;
use crate::container::{Container, State};
use crate::error::{Error, Result};
use crate::pattern::Pattern;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Only containers whose name matches this regular expression (anywhere in it,
    /// as grep -E; anchor with ^ and $).
    #[arg(value_name = "FILTER")]
    filter: Option<String>,
    /// One name per line.
    #[arg(short = '1', long = "line")]
    line: bool,
    /// A table: NAME STATE AUTOSTART IPV4 IPV6.
    #[arg(short = 'f', long = "fancy")]
    fancy: bool,
    /// Columns for -f (and keys for --json), comma-separated: name, state, autostart,
    /// groups, pid, ipv4, ipv6, memory, unprivileged, arch, image, backing.
    #[arg(short = 'F', long = "fancy-format", value_name = "COLUMNS")]
    fancy_format: Option<String>,
    /// A JSON array of objects, one per container, keyed by column (all of them without
    /// -F); numbers in bytes, lists as arrays, null for what does not apply.
    #[arg(long = "json")]
    json: bool,
    /// Only running containers (not frozen ones). The state flags add up.
    #[arg(long = "running")]
    running: bool,
    /// Only stopped containers.
    #[arg(long = "stopped")]
    stopped: bool,
    /// Only frozen containers.
    #[arg(long = "frozen")]
    frozen: bool,
    /// Only active containers: running or frozen.
    #[arg(long = "active")]
    active: bool,
    /// Only containers in every one of these autostart groups, comma-separated (may be
    /// repeated), as lxc-ls -g. An empty entry alone ("" or ","): the containers in no
    /// group; with a named group it is a usage error.
    #[arg(short = 'g', long = "groups", value_name = "GROUPS")]
    groups: Vec<String>,
    #[command(flatten)]
    common: Common,
}

/// One container as the columns see it; the costly facts are read on first use.
struct Row<'a> {
    c: &'a Container,
    cfg: Option<ContainerConfig>,
    state: State,
    addresses: OnceCell<(Vec<String>, Vec<String>)>,
}

impl Row<'_> {
    fn addresses(&self) -> &(Vec<String>, Vec<String>) {
        self.addresses.get_or_init(|| self.c.addresses(&self.state))
    }

    fn pid(&self) -> Option<i32> {
        match self.state {
            State::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// A column of `-F` and a key of `--json`: its text in the table and its JSON value.
struct Column {
    key: &'static str,
    text: fn(&Row) -> String,
    json: fn(&Row) -> Value,
}

fn dash_or(v: Option<String>) -> String {
    v.unwrap_or_else(|| "-".into())
}

fn list_text(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// Every column, in the order `--json` without -F gives them. New columns go here.
const COLUMNS: &[Column] = &[
    Column {
        key: "name",
        text: |r| r.c.name.clone(),
        json: |r| json!(r.c.name),
    },
    Column {
        key: "state",
        text: |r| r.state.to_string(),
        json: |r| json!(r.state.to_string()),
    },
    Column {
        key: "autostart",
        text: |r| if autostart(r) { "1" } else { "0" }.into(),
        json: |r| json!(autostart(r)),
    },
    Column {
        key: "groups",
        text: |r| list_text(groups(r)),
        json: |r| json!(groups(r)),
    },
    Column {
        key: "pid",
        text: |r| dash_or(r.pid().map(|p| p.to_string())),
        json: |r| json!(r.pid()),
    },
    Column {
        key: "ipv4",
        text: |r| list_text(&r.addresses().0),
        json: |r| json!(r.addresses().0),
    },
    Column {
        key: "ipv6",
        text: |r| list_text(&r.addresses().1),
        json: |r| json!(r.addresses().1),
    },
    Column {
        key: "memory",
        text: |r| dash_or(r.c.memory_use(&r.state).map(crate::config::format_size)),
        json: |r| json!(r.c.memory_use(&r.state)),
    },
    Column {
        key: "unprivileged",
        text: |r| dash_or(unprivileged(r).map(|u| u.to_string())),
        json: |r| json!(unprivileged(r)),
    },
    Column {
        key: "arch",
        text: |r| dash_or(r.cfg.as_ref().and_then(|x| x.arch.clone())),
        json: |r| json!(r.cfg.as_ref().and_then(|x| x.arch.clone())),
    },
    Column {
        key: "image",
        text: |r| dash_or(image(r)),
        json: |r| json!(image(r)),
    },
    Column {
        key: "backing",
        text: |r| dash_or(backing(r)),
        json: |r| json!(backing(r)),
    },
];

fn autostart(r: &Row) -> bool {
    r.cfg.as_ref().is_some_and(|x| x.autostart.enabled)
}

fn groups<'a>(r: &'a Row) -> &'a [String] {
    r.cfg.as_ref().map_or(&[], |x| &x.autostart.groups)
}

fn unprivileged(r: &Row) -> Option<bool> {
    r.cfg.as_ref().map(|x| x.idmap.is_some())
}

fn image(r: &Row) -> Option<String> {
    let i = r.cfg.as_ref()?.image.as_ref()?;
    Some(format!("{} {}", i.dist, i.release))
}

fn backing(r: &Row) -> Option<String> {
    Some(r.cfg.as_ref()?.rootfs.backend.as_str().to_string())
}

fn columns(format: Option<&str>, default: &str) -> Result<Vec<&'static Column>> {
    format
        .unwrap_or(default)
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .map(|c| {
            COLUMNS.iter().find(|col| col.key == c).ok_or_else(|| {
                let keys: Vec<&str> = COLUMNS.iter().map(|c| c.key).collect();
                Error::Usage(format!(
                    "unknown column {c:?} for -F; choose from {}",
                    keys.join(",")
                ))
            })
        })
        .collect()
}

/// The states the flags ask for (empty: every state).
fn wanted_states(a: &Args) -> Vec<&'static str> {
    let mut v = Vec::new();
    if a.running || a.active {
        v.push("RUNNING");
    }
    if a.frozen || a.active {
        v.push("FROZEN");
    }
    if a.stopped {
        v.push("STOPPED");
    }
    v
}

pub fn run(a: Args) -> Result<i32> {
    let sys = a.common.system()?;
    let filter = match &a.filter {
        Some(f) => Some(Pattern::new(f).map_err(|e| Error::Usage(format!("FILTER: {e}")))?),
        None => None,
    };
    let states = wanted_states(&a);
    let must = match crate::config::parse_required_groups(&a.groups) {
        Ok(m) => m,
        Err(why) => return Ok(super::usage_error::<Args>("ls", why)),
    };
    let all = Container::list(&sys)?;
    let picked: Vec<&Container> = all
        .iter()
        .filter(|c| filter.as_ref().is_none_or(|f| f.is_match(&c.name)))
        .collect();
    // Each monitor is asked on one of a few threads; addresses read there too when shown.
    let want_addresses = a.json || a.fancy || a.fancy_format.is_some();
    let rows: Vec<Row> = crate::par::map(&picked, crate::par::MONITOR_QUERIES, |c| {
        let state = c.state();
        if !states.is_empty() && !states.contains(&state.to_string().as_str()) {
            return None;
        }
        let row = Row {
            c,
            cfg: c.config().ok(),
            state,
            addresses: OnceCell::new(),
        };
        // lxc-ls -g: a container must be in all of them (ls_has_all_grps).
        let default = crate::config::Autostart::default();
        let auto = row.cfg.as_ref().map_or(&default, |x| &x.autostart);
        if !must.iter().all(|g| auto.in_group(g.as_deref())) {
            return None;
        }
        if want_addresses {
            row.addresses();
        }
        Some(row)
    })
    .into_iter()
    .flatten()
    .collect();
    if a.json {
        let every: Vec<&str> = COLUMNS.iter().map(|c| c.key).collect();
        let cols = columns(a.fancy_format.as_deref(), &every.join(","))?;
        return print_json(&rows, &cols);
    }
    if a.fancy || a.fancy_format.is_some() {
        let cols = columns(a.fancy_format.as_deref(), "name,state,autostart,ipv4,ipv6")?;
        let header: Vec<String> = cols.iter().map(|c| c.key.to_ascii_uppercase()).collect();
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| cols.iter().map(|c| (c.text)(r)).collect())
            .collect();
        super::table::print(&header, &table, " ");
        return Ok(0);
    }
    let names: Vec<&str> = rows.iter().map(|r| r.c.name.as_str()).collect();
    if a.line || !std::io::stdout().is_terminal() {
        for n in names {
            println!("{n}");
        }
    } else if !names.is_empty() {
        println!("{}", names.join("  "));
    }
    Ok(0)
}

fn print_json(rows: &[Row], cols: &[&Column]) -> Result<i32> {
    let list: Vec<Value> = rows
        .iter()
        .map(|r| {
            let obj: serde_json::Map<String, Value> = cols
                .iter()
                .map(|c| (c.key.to_string(), (c.json)(r)))
                .collect();
            Value::Object(obj)
        })
        .collect();
    let text = serde_json::to_string_pretty(&list)
        .map_err(|e| Error::Other(format!("cannot format the container list: {e}")))?;
    println!("{text}");
    Ok(0)
}
