//! rlxc-config: keys of a container's config and of rlxc.toml printed and set, checked
//! by the same loader as the files (same messages), comments kept, unknown keys named
//! with their nearest neighbours.

mod common;

use common::rt::Rt;

#[test]
fn container_keys_are_read_and_set_as_the_file_would_take_them() {
    let rt = Rt::new("cfg", "");
    let file = rt.env.lxcpath().join(&rt.name).join("config.toml");
    rt.ok(&["config", "limits.memory", "1G"]);
    rt.ok(&["config", "autostart.enabled", "true"]);
    rt.ok(&["config", "autostart.order", "10"]);
    assert_eq!(rt.ok(&["config", "limits.memory"]), "1G\n");
    assert_eq!(rt.ok(&["config", "autostart.order"]), "10\n");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("[limits]\nmemory = \"1G\""), "{text}");
    // The header comment the create wrote is still there.
    assert!(text.starts_with("# rlxc container configuration"), "{text}");
    let info: serde_json::Value = serde_json::from_str(&rt.ok(&["info", "--json"])).unwrap();
    assert_eq!(info["limits"]["memory"], "1G");
    assert_eq!(info["autostart"]["enabled"], true);
    assert_eq!(info["autostart"]["order"], 10);

    // Every key set, as `key = value`.
    let all = rt.ok(&["config"]);
    assert!(all.lines().any(|l| l == "limits.memory = \"1G\""), "{all}");
    assert!(
        all.lines().any(|l| l == "network.0.type = \"empty\""),
        "{all}"
    );
    // A key the config has but that is not set: nothing, success.
    assert_eq!(rt.ok(&["config", "limits.pids"]), "");

    // What the loader refuses, with its message; the file stays as it was.
    let before = std::fs::read_to_string(&file).unwrap();
    let e = rt
        .env
        .fails(&["config", "-n", &rt.name, "limits.memory", "1k"]);
    assert!(e.contains("limits.memory") && e.contains("below 4M"), "{e}");
    let e = rt
        .env
        .fails(&["config", "-n", &rt.name, "autostart.order", "soon"]);
    assert!(
        e.contains("autostart.order") && e.contains("config.toml"),
        "{e}"
    );
    let e = rt
        .env
        .fails(&["config", "-n", &rt.name, "limits.memry", "1G"]);
    assert!(
        e.contains("no key `limits.memry`") && e.contains("near ones: limits.memory"),
        "{e}"
    );
    let e = rt.env.fails(&["config", "-n", &rt.name, "limits.memry"]);
    assert!(e.contains("near ones: limits.memory"), "{e}");
    let e = rt
        .env
        .fails(&["config", "-n", &rt.name, "network.3.mtu", "1400"]);
    assert!(e.contains("[[network]] number 3"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    rt.ok(&["config", "network.0.mtu", "1400"]);
    assert_eq!(rt.ok(&["config", "network[0].mtu"]), "1400\n");
}

#[test]
fn system_keys_are_read_and_set_and_comments_stay() {
    let rt = Rt::new("cfgs", "");
    let file = rt.env.dir.path().join("rlxc.toml");
    let text = format!(
        "# my installation\n{}",
        std::fs::read_to_string(&file).unwrap()
    );
    std::fs::write(&file, text).unwrap();
    assert_eq!(
        rt.env.ok(&["config", "--system", "download.server"]).trim(),
        rt.env.server
    );
    rt.env
        .ok(&["config", "--system", "download.max_image_size", "2G"]);
    rt.env
        .ok(&["config", "--system", "network.domain", "example"]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.starts_with("# my installation\n"), "{text}");
    assert!(text.contains("max_image_size = \"2G\""), "{text}");
    assert!(text.contains("[network]\ndomain = \"example\""), "{text}");
    // The installation still works with it.
    assert!(rt.env.ok(&["ls"]).contains(&rt.name));
    let e = rt
        .env
        .fails(&["config", "--system", "network.domain", "a..b"]);
    assert!(
        e.contains("network.domain") && e.contains("a DNS domain"),
        "{e}"
    );
    let e = rt.env.fails(&["config", "--system", "lxcpth", "/srv"]);
    assert!(e.contains("near ones: lxcpath"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    let all = rt.env.ok(&["config", "--system"]);
    assert!(
        all.lines().any(|l| l == "network.domain = \"example\""),
        "{all}"
    );
}
