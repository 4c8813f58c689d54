use super::*;

#[test]
fn unknown_key_names_file_line_and_key() {
    let e = parse_toml::<SystemConfigFile>(
        Path::new("/etc/rlxc/rlxc.toml"),
        "lxcpath = \"/x\"\nlxcpaht = \"/y\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("/etc/rlxc/rlxc.toml"), "{e}");
    assert!(e.contains("line 2"), "{e}");
    assert!(e.contains("lxcpaht"), "{e}");
}

#[test]
fn bad_value_names_the_key() {
    let e = parse_toml::<SystemConfigFile>(Path::new("f.toml"), "\ncachepath = 3\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 2") && e.contains("cachepath"), "{e}");
}

#[test]
fn relative_paths_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rlxc.toml");
    std::fs::write(&f, "lxcpath = \"relative/dir\"\n").unwrap();
    let e = SystemConfig::from_file(&f).unwrap_err().to_string();
    assert!(e.contains("lxcpath") && e.contains("absolute"), "{e}");
}

#[test]
fn defaults_resolve_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rlxc.toml");
    std::fs::write(&f, "[download]\nserver = \"http://127.0.0.1:1\"\n").unwrap();
    let c = SystemConfig::from_file(&f).unwrap();
    assert_eq!(c.defaults, dir.path().join("default.toml"));
    assert_eq!(c.lxcpath, PathBuf::from("/var/lib/rlxc"));
    assert_eq!(c.download_server, "http://127.0.0.1:1");
}

#[test]
fn builtin_defaults_have_one_veth_on_virbr0() {
    let c: ContainerConfig = parse_toml(Path::new("d"), BUILTIN_DEFAULTS).unwrap();
    assert_eq!(c.networks.len(), 1);
    assert_eq!(c.networks[0].kind, NetKind::Veth);
    assert_eq!(c.networks[0].link.as_deref(), Some("virbr0"));
    c.validate(Path::new("d")).unwrap();
}

#[test]
fn container_config_round_trips() {
    let mut c: ContainerConfig = parse_toml(Path::new("d"), BUILTIN_DEFAULTS).unwrap();
    c.hostname = Some("web1".into());
    c.arch = Some("amd64".into());
    c.fill_hwaddrs();
    let text = toml::to_string_pretty(&c).unwrap();
    let back: ContainerConfig = parse_toml(Path::new("d"), &text).unwrap();
    assert_eq!(back, c);
    assert!(!text.contains("xx"), "{text}");
}

/// Every typed value is saved in the text it was read in, and reloads equal.
#[test]
fn typed_values_save_as_written() {
    let values = [
        "halt = \"SIGRTMIN+3\"",
        "reboot = \"30\"",
        "stop = \"KILL\"",
        "memory = \"1024M\"",
        "type = \"macvlan\"",
        "hwaddr = \"00:16:3E:5a:01:02\"",
        "ipv4 = \"10.0.3.50/24\"",
        "ipv4_assigned = \"10.0.3.254/24\"",
        "ipv4_gateway = \"auto\"",
        "mode = \"vepa\"",
    ];
    let text = format!(
        "[signals]\n{}\n{}\n{}\n[limits]\n{}\n[[network]]\nlink = \"eth0\"\n{}\n",
        values[0],
        values[1],
        values[2],
        values[3],
        values[4..].join("\n")
    );
    let c: ContainerConfig = parse_toml(Path::new("c.toml"), &text).unwrap();
    c.validate(Path::new("c.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("config.toml");
    c.save(&f).unwrap();
    let saved = std::fs::read_to_string(&f).unwrap();
    for v in values {
        assert!(saved.lines().any(|l| l == v), "{v} in {saved}");
    }
    assert_eq!(ContainerConfig::load(&f).unwrap(), c);
}

#[test]
fn bad_network_values_are_named() {
    let e = parse_toml::<ContainerConfig>(
        Path::new("c.toml"),
        "[[network]]\ntype = \"veth\"\nipv4 = \"10.0.3.300/24\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("c.toml: line 3 (`ipv4 = \"10.0.3.300/24\"`): network[0].ipv4 = ")
            && e.contains("an address like \"10.0.3.50/24\""),
        "{e}"
    );
    let c: ContainerConfig = parse_toml(
        Path::new("c.toml"),
        "[[network]]\ntype = \"veth\"\nlink = \"virbr0\"\nmode = \"vepa\"\n",
    )
    .unwrap();
    let e = c.validate(Path::new("c.toml")).unwrap_err().to_string();
    assert!(
        e.contains("network[0].mode = \"vepa\": only for type"),
        "{e}"
    );
}

#[test]
fn the_shipped_files_parse_and_make_new_containers_unprivileged() {
    let shipped = include_str!("../../config/rlxc.toml");
    let sys: SystemConfigFile = parse_toml(Path::new("config/rlxc.toml"), shipped).unwrap();
    assert_eq!(sys.idmap, SubidFiles::default());
    let c: ContainerConfig = parse_toml(Path::new("d"), BUILTIN_DEFAULTS).unwrap();
    assert_eq!(c.idmap, Some(IdMap::default()), "unprivileged by default");
    c.validate(Path::new("d")).unwrap();
    let flipped = BUILTIN_DEFAULTS.replace("\n[idmap]\n", "\n#[idmap]\n");
    assert_ne!(flipped, BUILTIN_DEFAULTS);
    let c: ContainerConfig = parse_toml(Path::new("d"), &flipped).unwrap();
    assert_eq!(c.idmap, None, "one line makes them privileged");
}
