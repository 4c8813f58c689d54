//! `[[publish]]` of a container's config: host ports that reach the container, as
//! Docker's `-p [ADDRESS:]HOST:CONTAINER[/udp]`. Typed at load, so a start never meets
//! a port it cannot use; the entries are checked against each other here, against the
//! host and other containers at start (net::ports).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One `[[publish]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publish {
    /// The host port or range ("8080", "8080-8090"; an integer is taken too).
    pub host: PortRange,
    /// The container's port or range, as long as `host`.
    pub container: PortRange,
    #[serde(default, skip_serializing_if = "Proto::is_tcp")]
    pub proto: Proto,
    /// The host address it is reachable at; absent or 0.0.0.0: every address of the
    /// host, 127.0.0.1 included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
}

impl Publish {
    /// The host address, None for all of them.
    pub fn host_address(&self) -> Option<Ipv4Addr> {
        self.address.filter(|a| !a.is_unspecified())
    }

    /// Whether 127.0.0.1 (the host's loopback) reaches it.
    pub fn on_loopback(&self) -> bool {
        self.host_address().is_none_or(|a| a.is_loopback())
    }

    /// Whether two entries would take the same host port.
    pub fn overlaps(&self, o: &Publish) -> bool {
        let addrs = match (self.host_address(), o.host_address()) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        self.proto == o.proto && addrs && self.host.overlaps(&o.host)
    }
}

impl fmt::Display for Publish {
    /// `0.0.0.0:8080->80/tcp`, as `docker ps` shows it.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{}:{}->{}/{}",
            self.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host,
            self.container,
            self.proto
        )
    }
}

/// `proto`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    #[default]
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    fn is_tcp(&self) -> bool {
        *self == Proto::Tcp
    }
}

impl FromStr for Proto {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(format!("{s:?}: expected \"tcp\" or \"udp\"")),
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A port ("80") or an inclusive range ("8080-8090"), 1-65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn len(&self) -> u32 {
        u32::from(self.last - self.first) + 1
    }

    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.first <= o.last && o.first <= self.last
    }

    pub fn ports(&self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }
}

const EXPECTED: &str = "expected a port (1-65535) like \"8080\" or a range like \"8080-8090\"";

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let port = |t: &str| {
            // Digits only: "+80" or " 80" would save differently from how they were read.
            t.bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| t.parse::<u16>().ok())
                .flatten()
                .filter(|p| *p > 0)
        };
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        match (port(a), port(b)) {
            (Some(first), Some(last)) if first <= last => Ok(PortRange { first, last }),
            (Some(first), Some(last)) => Err(format!(
                "{s:?}: the range runs backwards ({first} > {last}); write \"{last}-{first}\""
            )),
            _ => Err(format!("{s:?}: {EXPECTED}")),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A string, or an integer (`host = 8080` is what most people write first).
impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<PortRange, E> {
                s.parse().map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<PortRange, E> {
                u16::try_from(n)
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|p| PortRange { first: p, last: p })
                    .ok_or_else(|| E::custom(format!("{n}: {EXPECTED}")))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<PortRange, E> {
                self.visit_i64(i64::try_from(n).unwrap_or(-1))
            }
        }
        d.deserialize_any(V)
    }
}

/// What spans keys and entries: ranges of one length, no host port taken twice.
pub fn check(entries: &[Publish]) -> Result<(), String> {
    for (i, p) in entries.iter().enumerate() {
        if p.host.len() != p.container.len() {
            return Err(format!(
                "publish[{i}]: host = \"{}\" is {} ports, container = \"{}\" is {}: \
                 each host port goes to one container port, so give both the same length",
                p.host,
                p.host.len(),
                p.container,
                p.container.len()
            ));
        }
        if let Some(a) = p.address {
            if a.is_multicast() || a.is_broadcast() {
                return Err(format!(
                    "publish[{i}].address = \"{a}\": not an address of the host; \
                     leave it out for all of them"
                ));
            }
        }
        if let Some(j) = entries[..i].iter().position(|o| o.overlaps(p)) {
            return Err(format!(
                "publish[{i}] ({p}) takes host ports publish[{j}] ({}) takes already",
                entries[j]
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_toml, ContainerConfig};
    use std::path::Path;

    fn load(text: &str) -> Result<ContainerConfig, String> {
        parse_toml::<ContainerConfig>(Path::new("c.toml"), text)
            .and_then(|c| c.validate(Path::new("c.toml")).map(|_| c))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn ports_and_ranges() {
        assert_eq!(
            "80".parse::<PortRange>(),
            Ok(PortRange {
                first: 80,
                last: 80
            })
        );
        let r: PortRange = "8080-8090".parse().unwrap();
        assert_eq!((r.len(), r.to_string()), (11, "8080-8090".to_string()));
        assert_eq!(r.ports().nth(5), Some(8085));
        assert!(r.overlaps(&"8090-9000".parse().unwrap()));
        assert!(!r.overlaps(&"8091".parse().unwrap()));
        for bad in ["0", "65536", "", "-", "80-", "http", "+80", " 80", "1-2-3"] {
            let e = bad.parse::<PortRange>().unwrap_err();
            assert!(e.contains("expected a port"), "{bad}: {e}");
        }
        let e = "90-80".parse::<PortRange>().unwrap_err();
        assert!(e.contains("backwards") && e.contains("\"80-90\""), "{e}");
    }

    #[test]
    fn entries_load_save_and_reload_as_written() {
        let text = "[[publish]]\nhost = 8080\ncontainer = \"80\"\n\n[[publish]]\nhost = \"5353-5354\"\ncontainer = \"53-54\"\nproto = \"udp\"\naddress = \"127.0.0.1\"\n";
        let c = load(text).unwrap();
        assert_eq!(c.publish.len(), 2);
        assert_eq!(c.publish[0].proto, Proto::Tcp);
        assert_eq!(c.publish[0].to_string(), "0.0.0.0:8080->80/tcp");
        assert_eq!(c.publish[1].to_string(), "127.0.0.1:5353-5354->53-54/udp");
        assert!(c.publish[0].on_loopback() && c.publish[1].on_loopback());
        let saved = toml::to_string_pretty(&c).unwrap();
        assert!(saved.contains("host = \"8080\"") && !saved.contains("proto = \"tcp\""));
        assert_eq!(load(&saved).unwrap(), c);
    }

    #[test]
    fn bad_entries_name_the_key_and_the_fix() {
        for (text, expected) in [
            (
                "[[publish]]\nhost = 70000\ncontainer = \"80\"\n",
                "line 2 (`host = 70000`): publish[0].host: 70000: expected a port",
            ),
            (
                "[[publish]]\nhost = \"80\"\ncontainer = \"80\"\nproto = \"sctp\"\n",
                "publish[0].proto",
            ),
            (
                "[[publish]]\nhost = \"80\"\ncontainer = \"80\"\naddress = \"localhost\"\n",
                "publish[0].address",
            ),
            (
                "[[publish]]\nhost = \"80\"\n",
                "missing field `container`",
            ),
            (
                "[[publish]]\nhost = \"8080-8081\"\ncontainer = \"80\"\n",
                "publish[0]: host = \"8080-8081\" is 2 ports, container = \"80\" is 1",
            ),
            (
                "[[publish]]\nhost = \"80\"\ncontainer = \"80\"\naddress = \"255.255.255.255\"\n",
                "publish[0].address = \"255.255.255.255\": not an address of the host",
            ),
            (
                "[[publish]]\nhost = \"8080-8090\"\ncontainer = \"80-90\"\n[[publish]]\nhost = \"8090\"\ncontainer = \"90\"\naddress = \"127.0.0.1\"\n",
                "publish[1] (127.0.0.1:8090->90/tcp) takes host ports publish[0] (0.0.0.0:8080-8090->80-90/tcp)",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.starts_with("c.toml: ") && e.contains(expected), "{text}: {e}");
        }
        // The same port over udp, or on two distinct addresses, is no clash.
        load(
            "[[publish]]\nhost = \"53\"\ncontainer = \"53\"\n\
             [[publish]]\nhost = \"53\"\ncontainer = \"54\"\nproto = \"udp\"\naddress = \"127.0.0.2\"\n\
             [[publish]]\nhost = \"53\"\ncontainer = \"55\"\nproto = \"udp\"\naddress = \"127.0.0.3\"\n",
        )
        .unwrap();
    }
}
