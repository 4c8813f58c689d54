//! Output for scripts: `rlxc-ls --json` and its filters (state flags, a regex, -g, -F),
//! `rlxc-info --json`, parsed as a script would; two busybox containers, one running
//! and one frozen, one stopped.

mod common;

use common::rt::{Made, Rt};
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn strs(v: &[&String]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|o| o["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn ls_and_info_speak_json_and_ls_filters_as_lxc_ls() {
    let rt = Rt::new(
        "js",
        "[[network]]\ntype = \"empty\"\n[limits]\nmemory = \"256M\"\n\
         [autostart]\ngroups = [\"web\"]\n",
    );
    let other = Made {
        env: &rt.env,
        name: format!("{}-b", rt.name),
    };
    let third = Made {
        env: &rt.env,
        name: format!("{}-c", rt.name),
    };
    for (m, groups) in [(&other, "[\"web\", \"db\"]"), (&third, "[]")] {
        rt.env.create_with(
            &m.name,
            "busybox",
            &common::busybox_release(),
            &format!("[[network]]\ntype = \"empty\"\n[autostart]\ngroups = {groups}\n"),
        );
    }
    rt.ok(&["start", "-d"]);
    rt.env.ok(&["start", "-d", "-n", &third.name]);
    rt.env.ok(&["freeze", "-n", &third.name]);

    // Everything, every key.
    let all = json(&rt.env.ok(&["ls", "--json"]));
    assert_eq!(names(&all), strs(&[&rt.name, &other.name, &third.name]));
    let first = &all[0];
    for key in [
        "name",
        "state",
        "autostart",
        "groups",
        "pid",
        "ipv4",
        "ipv6",
        "memory",
        "unprivileged",
        "arch",
        "image",
        "backing",
    ] {
        assert!(first.get(key).is_some(), "no {key} in {first}");
    }
    assert_eq!(first["state"], "RUNNING");
    assert!(first["pid"].as_i64().is_some_and(|p| p > 1), "{first}");
    assert!(first["memory"].as_u64().is_some_and(|m| m > 0), "{first}");
    assert_eq!(first["backing"], "dir");
    assert_eq!(first["groups"], serde_json::json!(["web"]));
    assert!(first["ipv4"].is_array());
    assert_eq!(all[1]["state"], "STOPPED");
    assert_eq!(all[1]["pid"], Value::Null);
    assert_eq!(all[1]["memory"], Value::Null);
    assert_eq!(all[2]["state"], "FROZEN");

    // LXC's state flags: --running is not frozen, --active is both, flags add up.
    let only = |args: &[&str]| names(&json(&rt.env.ok(args)));
    assert_eq!(only(&["ls", "--json", "--running"]), strs(&[&rt.name]));
    assert_eq!(only(&["ls", "--json", "--frozen"]), strs(&[&third.name]));
    assert_eq!(
        only(&["ls", "--json", "--active"]),
        strs(&[&rt.name, &third.name])
    );
    assert_eq!(only(&["ls", "--json", "--stopped"]), strs(&[&other.name]));
    assert_eq!(
        only(&["ls", "--json", "--stopped", "--frozen"]),
        strs(&[&other.name, &third.name])
    );
    // A regex FILTER, anywhere in the name as grep -E.
    assert_eq!(
        only(&["ls", "--json", "js-(b|c)$"]),
        strs(&[&other.name, &third.name])
    );
    assert_eq!(only(&["ls", "--json", "^t[0-9]+-js$"]), strs(&[&rt.name]));
    let plain = rt.env.ok(&["ls", "-1", "--active", "b$|c$"]);
    assert_eq!(plain.lines().collect::<Vec<_>>(), [third.name.as_str()]);
    // -g as lxc-ls's: in every group given (comma-separated or repeated), with the rest.
    assert_eq!(
        only(&["ls", "--json", "-g", "web"]),
        strs(&[&rt.name, &other.name])
    );
    assert_eq!(
        only(&["ls", "--json", "-g", "db,web"]),
        strs(&[&other.name])
    );
    assert_eq!(
        only(&["ls", "--json", "--groups", "web", "--groups", "db"]),
        strs(&[&other.name])
    );
    assert_eq!(
        only(&["ls", "--json", "-g", "web", "--running"]),
        strs(&[&rt.name])
    );
    assert!(only(&["ls", "--json", "-g", "nosuch"]).is_empty());
    // Read as rlxc-autostart -g: blanks dropped, an empty entry is "in no group".
    assert_eq!(
        only(&["ls", "--json", "-g", "db, web"]),
        strs(&[&other.name])
    );
    assert_eq!(only(&["ls", "--json", "-g", ""]), strs(&[&third.name]));
    // A named group with an empty entry could select nothing: a usage error saying so.
    for bad in [&["-g", "web,"][..], &["-g", "web", "-g", ""]] {
        let mut args = vec!["ls", "--json"];
        args.extend(bad);
        let out = rt.env.run(&args);
        let err = common::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("-g names web and an empty entry"), "{err}");
        assert!(
            err.contains("cannot be combined with a named group"),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{}", common::stdout(&out));
    }
    let grouped = rt.env.ok(&["ls", "-g", "db", "-F", "name,groups"]);
    let lines: Vec<&str> = grouped.lines().collect();
    assert_eq!(lines.len(), 2, "{grouped}");
    assert!(lines[1].ends_with("web, db"), "{grouped}");

    // -F picks the keys (and the table's columns).
    let picked = json(
        &rt.env
            .ok(&["ls", "--running", "-F", "name,state,pid,memory", "--json"]),
    );
    let obj = picked[0].as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["memory", "name", "pid", "state"]);
    let table = rt.env.ok(&["ls", "-F", "name,state,memory", "--stopped"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["NAME", "STATE", "MEMORY"],
            vec![other.name.as_str(), "STOPPED", "-"]
        ]
    );
    let e = rt.env.fails(&["ls", "-F", "name,colour"]);
    assert!(e.contains("\"colour\"") && e.contains("memory"), "{e}");
    let e = rt.env.fails(&["ls", "web("]);
    assert!(e.contains("FILTER") && e.contains("without its `)`"), "{e}");

    // rlxc-info --json: the running one and the stopped one.
    let info = json(&rt.ok(&["info", "--json"]));
    assert_eq!(info["name"], rt.name.as_str());
    assert_eq!(info["state"], "RUNNING");
    assert_eq!(info["monitor"], "ok");
    assert_eq!(info["pid"], first["pid"]);
    assert_eq!(info["privileged"], true);
    assert_eq!(info["idmap"], Value::Null);
    assert_eq!(info["backing_store"], "dir");
    assert_eq!(info["limits"]["memory"], "256M");
    assert_eq!(info["autostart"]["enabled"], false);
    assert_eq!(info["image"]["dist"], "busybox");
    assert_eq!(info["networks"][0]["type"], "empty");
    assert!(
        info["memory_bytes"].as_u64().is_some_and(|m| m > 0),
        "{info}"
    );
    assert!(
        info["disk_use"]["files"].as_u64().is_some_and(|m| m > 0),
        "{info}"
    );
    assert!(info["snapshots"].as_array().is_some_and(|s| s.is_empty()));
    assert!(info["rootfs"]
        .as_str()
        .is_some_and(|p| p.ends_with("rootfs")));
    let stopped = json(&rt.env.ok(&["info", "--json", "-n", &other.name]));
    assert_eq!(stopped["state"], "STOPPED");
    assert_eq!(stopped["pid"], Value::Null);
    assert_eq!(stopped["monitor"], Value::Null);
    assert_eq!(stopped["ipv4"], serde_json::json!([]));
    rt.env.ok(&["unfreeze", "-n", &third.name]);
}
