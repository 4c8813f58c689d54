//! Config values that check themselves when deserialised: a bad one fails the load
//! with the file, line and key (`parse_toml` adds those), and every user gets a typed
//! value instead of re-parsing a string. Each serialises to the text it was read from
//! (or its one canonical spelling), so a saved config.toml reloads equal.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use super::signal::{parse_signal, ACCEPTED_FORMS};
use super::size::parse_size;

/// `TryFrom<String>` through `FromStr`, for `#[serde(try_from = "String")]`.
macro_rules! try_from_string {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                s.parse()
            }
        }
    )*};
}
pub(super) use try_from_string;

/// Both `String` conversions behind `#[serde(try_from = "String", into = "String")]`,
/// through `FromStr` and `Display`.
macro_rules! string_conversions {
    ($t:ty) => {
        try_from_string!($t);
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    };
}

/// `type` of a `[[network]]` entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetKind {
    /// A veth pair, the host end on a bridge.
    #[default]
    Veth,
    /// A macvlan on a host interface.
    Macvlan,
    /// The host's network namespace.
    None,
    /// A network namespace with only loopback.
    Empty,
}

impl NetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NetKind::Veth => "veth",
            NetKind::Macvlan => "macvlan",
            NetKind::None => "none",
            NetKind::Empty => "empty",
        }
    }
}

impl fmt::Display for NetKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// macvlan `mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    #[default]
    Bridge,
    Private,
    Vepa,
    Passthru,
}

impl MacvlanMode {
    /// The name netlink's macvlan mode is chosen by.
    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }
}

/// "10.0.3.50/24": an IPv4 address with a prefix length, the address kept as written
/// (not masked to the network). The prefix is read as `u8` like the checks before this
/// type, so exactly the same texts are accepted.
pub fn parse_cidr_v4(s: &str) -> Option<Ipv4Network> {
    let (a, p) = s.split_once('/')?;
    Ipv4Network::new(a.parse().ok()?, p.parse().ok()?).ok()
}

/// `ipv4` of a `[[network]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Ipv4Mode {
    /// The image's own DHCP client configures it.
    Dhcp,
    /// A free address of the managed subnet, picked once and kept in `ipv4_assigned`.
    Auto,
    /// This address and prefix.
    Fixed(Ipv4Network),
}

impl FromStr for Ipv4Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "dhcp" => Ok(Ipv4Mode::Dhcp),
            "auto" => Ok(Ipv4Mode::Auto),
            _ => parse_cidr_v4(s).map(Ipv4Mode::Fixed).ok_or_else(|| {
                format!("{s:?}: expected \"dhcp\", \"auto\" or an address like \"10.0.3.50/24\"")
            }),
        }
    }
}

impl fmt::Display for Ipv4Mode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Ipv4Mode::Dhcp => f.write_str("dhcp"),
            Ipv4Mode::Auto => f.write_str("auto"),
            Ipv4Mode::Fixed(n) => write!(f, "{n}"),
        }
    }
}
string_conversions!(Ipv4Mode);

/// `ipv4_assigned`: the address `ipv4 = "auto"` picked, with the subnet's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Assigned(pub Ipv4Network);

impl Ipv4Assigned {
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Result<Self, String> {
        Ipv4Network::new(addr, prefix)
            .map(Ipv4Assigned)
            .map_err(|e| format!("{addr}/{prefix}: {e}"))
    }
}

impl FromStr for Ipv4Assigned {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_cidr_v4(s).map(Ipv4Assigned).ok_or_else(|| {
            format!(
                "{s:?}: expected an address like \"10.0.3.50/24\" (remove it to pick a new one)"
            )
        })
    }
}

impl fmt::Display for Ipv4Assigned {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}
string_conversions!(Ipv4Assigned);

/// `ipv4_gateway`: the default route of a fixed address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Ipv4Gateway {
    /// The managed bridge's address (only on the managed bridge).
    Auto,
    Addr(Ipv4Addr),
}

impl FromStr for Ipv4Gateway {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "auto" {
            return Ok(Ipv4Gateway::Auto);
        }
        s.parse()
            .map(Ipv4Gateway::Addr)
            .map_err(|_| format!("{s:?}: expected an IPv4 address or \"auto\""))
    }
}

impl fmt::Display for Ipv4Gateway {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Ipv4Gateway::Auto => f.write_str("auto"),
            Ipv4Gateway::Addr(a) => write!(f, "{a}"),
        }
    }
}
string_conversions!(Ipv4Gateway);

/// `hwaddr`: six hex pairs, where `x` digits (LXC's `00:16:3e:xx:xx:xx`) are filled
/// with random ones at create. Kept as written: the text is what the user chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HwaddrTemplate(String);

impl HwaddrTemplate {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Every `x` replaced by a random hex digit from `rnd`, the rest lowercased.
    pub fn fill(&self, rnd: &mut impl Iterator<Item = u8>) -> HwaddrTemplate {
        HwaddrTemplate(
            self.0
                .chars()
                .map(|c| {
                    if c == 'x' || c == 'X' {
                        let v = rnd.next().unwrap_or(0) % 16;
                        char::from_digit(v as u32, 16).unwrap_or('0')
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect(),
        )
    }
}

impl FromStr for HwaddrTemplate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let ok = parts.len() == 6
            && parts.iter().all(|p| {
                p.len() == 2
                    && p.chars()
                        .all(|c| c.is_ascii_hexdigit() || c == 'x' || c == 'X')
            });
        if ok {
            Ok(HwaddrTemplate(s.to_string()))
        } else {
            Err(format!(
                "{s:?}: expected six hex pairs like 00:16:3e:12:34:56"
            ))
        }
    }
}

impl fmt::Display for HwaddrTemplate {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}
string_conversions!(HwaddrTemplate);

/// A size such as `limits.memory = "512M"`: the bytes, and the text as written, which
/// is what gets saved ("1024M" stays "1024M" rather than becoming "1G").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ByteSize {
    bytes: u64,
    text: String,
}

impl ByteSize {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match parse_size(s) {
            Some(bytes) => Ok(ByteSize {
                bytes,
                text: s.to_string(),
            }),
            None => Err(format!("{s:?}: expected a size like \"512M\" or \"2G\"")),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}
string_conversions!(ByteSize);

/// `cgroup_layout`: the cgroup tree a container's init sees at /sys/fs/cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupLayout {
    /// Chosen at each start from the init in the rootfs and the host's layout.
    #[default]
    Auto,
    /// Pure cgroup2: the container's own cgroup2 directory, mounted as cgroup2.
    Unified,
    /// The v1 hierarchies (limits read-only, `name=systemd` writable) and cgroup2 under
    /// `unified/`: what systemd older than 230 needs.
    Hybrid,
}

impl CgroupLayout {
    pub fn as_str(self) -> &'static str {
        match self {
            CgroupLayout::Auto => "auto",
            CgroupLayout::Unified => "unified",
            CgroupLayout::Hybrid => "hybrid",
        }
    }
}

impl fmt::Display for CgroupLayout {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal for `signals.halt`/`reboot`/`stop`: the number, and the name as written,
/// which is what gets saved (a number would tie the file to this libc's SIGRTMIN).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Signal {
    number: i32,
    text: String,
}

impl Signal {
    pub fn number(&self) -> i32 {
        self.number
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match parse_signal(s) {
            Some(number) => Ok(Signal {
                number,
                text: s.to_string(),
            }),
            None => Err(format!("{s:?}: not a signal; expected {ACCEPTED_FORMS}")),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}
string_conversions!(Signal);

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;

/// `init.user`: `UID:GID`, numeric (an image's user name is resolved at create time,
/// against the image's own /etc/passwd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppUser {
    pub uid: u32,
    pub gid: u32,
}

impl FromStr for AppUser {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected UID:GID, numbers, like \"1000:1000\"");
        let (u, g) = s.split_once(':').ok_or_else(bad)?;
        Ok(AppUser {
            uid: u.parse().map_err(|_| bad())?,
            gid: g.parse().map_err(|_| bad())?,
        })
    }
}

impl fmt::Display for AppUser {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}:{}", self.uid, self.gid)
    }
}
string_conversions!(AppUser);
