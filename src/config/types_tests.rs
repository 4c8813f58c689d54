use std::path::Path;

use serde::de::DeserializeOwned;

use super::*;
use crate::config::parse_toml;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct One<T> {
    v: T,
}

/// Parses `v = "text"` the way config files are read, checks that saving writes the
/// same text back and that it reloads equal.
fn ok<T: DeserializeOwned + Serialize + PartialEq + fmt::Debug>(text: &str) -> T {
    let toml_text = format!("v = {text:?}\n");
    let one: One<T> = parse_toml(Path::new("c.toml"), &toml_text).expect(text);
    let saved = toml::to_string(&one).unwrap();
    assert_eq!(saved, toml_text, "{text}");
    let back: One<T> = parse_toml(Path::new("c.toml"), &saved).unwrap();
    assert_eq!(back, one);
    one.v
}

/// The load error: file, line, the line's key and value, and what is expected.
fn bad<T: DeserializeOwned + fmt::Debug>(text: &str, expected: &str) {
    let toml_text = format!("# c\nv = {text:?}\n");
    let e = parse_toml::<One<T>>(Path::new("c.toml"), &toml_text)
        .expect_err(text)
        .to_string();
    assert!(e.starts_with("c.toml: line 2 (`v = "), "{e}");
    assert!(
        e.contains(&format!("): v = {text:?}: ")) || e.contains("): v: "),
        "{e}"
    );
    assert!(
        e.contains(&format!("{text:?}")) || e.contains(&format!("`{text}`")),
        "{e}"
    );
    assert!(e.contains(expected), "{text}: {e}");
}

#[test]
fn net_kinds() {
    assert_eq!(ok::<NetKind>("veth"), NetKind::Veth);
    assert_eq!(ok::<NetKind>("macvlan"), NetKind::Macvlan);
    assert_eq!(ok::<NetKind>("none"), NetKind::None);
    assert_eq!(ok::<NetKind>("empty"), NetKind::Empty);
    assert_eq!(NetKind::Macvlan.to_string(), "macvlan");
    for b in ["Veth", "vlan", ""] {
        bad::<NetKind>(b, "veth");
    }
}

#[test]
fn macvlan_modes() {
    for (t, m) in [
        ("bridge", MacvlanMode::Bridge),
        ("private", MacvlanMode::Private),
        ("vepa", MacvlanMode::Vepa),
        ("passthru", MacvlanMode::Passthru),
    ] {
        assert_eq!(ok::<MacvlanMode>(t), m);
        assert_eq!(m.as_str(), t);
    }
    bad::<MacvlanMode>("source", "passthru");
}

#[test]
fn ipv4_modes() {
    assert_eq!(ok::<Ipv4Mode>("dhcp"), Ipv4Mode::Dhcp);
    assert_eq!(ok::<Ipv4Mode>("auto"), Ipv4Mode::Auto);
    let Ipv4Mode::Fixed(n) = ok::<Ipv4Mode>("10.0.3.50/24") else {
        panic!("not fixed");
    };
    // The host address is kept, not masked to the network's.
    assert_eq!(n.ip(), Ipv4Addr::new(10, 0, 3, 50));
    assert_eq!(n.prefix(), 24);
    ok::<Ipv4Mode>("10.0.3.50/32");
    for b in [
        "10.0.3.300/24",
        "10.0.3.50",
        "10.0.3.50/33",
        "10.0.3.50/255.255.255.0",
        "DHCP",
        "",
    ] {
        bad::<Ipv4Mode>(
            b,
            "expected \"dhcp\", \"auto\" or an address like \"10.0.3.50/24\"",
        );
    }
}

#[test]
fn assigned_addresses_and_gateways() {
    assert_eq!(
        ok::<Ipv4Assigned>("10.0.3.254/24"),
        Ipv4Assigned::new(Ipv4Addr::new(10, 0, 3, 254), 24).unwrap()
    );
    assert!(Ipv4Assigned::new(Ipv4Addr::new(10, 0, 3, 254), 40).is_err());
    bad::<Ipv4Assigned>("auto", "remove it to pick a new one");
    bad::<Ipv4Assigned>("10.0.3.254", "like \"10.0.3.50/24\"");
    assert_eq!(ok::<Ipv4Gateway>("auto"), Ipv4Gateway::Auto);
    assert_eq!(
        ok::<Ipv4Gateway>("10.0.3.1"),
        Ipv4Gateway::Addr(Ipv4Addr::new(10, 0, 3, 1))
    );
    bad::<Ipv4Gateway>("10.0.3.1/24", "an IPv4 address or \"auto\"");
}

#[test]
fn hwaddr_templates() {
    ok::<HwaddrTemplate>("00:16:3e:xx:xx:xx");
    ok::<HwaddrTemplate>("00:16:3E:5A:01:02");
    let mut r = [0xab, 0x01, 0x0f, 0x10, 0x11, 0x12].into_iter();
    let t: HwaddrTemplate = "00:16:3E:xx:xx:xx".parse().unwrap();
    assert_eq!(t.fill(&mut r).as_str(), "00:16:3e:b1:f0:12");
    for b in ["00:16:3e:xx:xx", "00:16:3e:xx:xx:xg", "0016.3exx.xxxx", ""] {
        bad::<HwaddrTemplate>(b, "six hex pairs");
    }
}

#[test]
fn byte_sizes_keep_their_text() {
    assert_eq!(ok::<ByteSize>("512M").bytes(), 512 << 20);
    assert_eq!(ok::<ByteSize>("1024M").bytes(), 1 << 30);
    assert_eq!(ok::<ByteSize>("2g").bytes(), 2 << 30);
    assert_eq!(ok::<ByteSize>("100").bytes(), 100);
    for b in ["lots", "-1G", "99999999999T", ""] {
        bad::<ByteSize>(b, "expected a size like \"512M\"");
    }
}

#[test]
fn signals_keep_their_name() {
    assert_eq!(ok::<Signal>("SIGPWR").number(), libc::SIGPWR);
    assert_eq!(ok::<Signal>("PWR").number(), libc::SIGPWR);
    assert_eq!(ok::<Signal>("SIGRTMIN+3").number(), libc::SIGRTMIN() + 3);
    assert_eq!(ok::<Signal>("30").number(), 30);
    for b in ["SIGBOGUS", "RTMIN+-3", "0"] {
        bad::<Signal>(
            b,
            "not a signal; expected a signal name or number such as SIGPWR",
        );
    }
}
