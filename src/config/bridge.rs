//! Values of `[network]` in rlxc.toml (the managed bridge), checked when read like the
//! container values in types.rs. What needs two keys at once (a DHCP range inside the
//! subnet) is net/'s to check.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::Deserialize;

use super::types::try_from_string;

/// "ADDRESS/PREFIX", each part's error naming it; `example` and `family` for the message.
fn address_prefix<A: FromStr>(s: &str, example: &str, family: &str) -> Result<(A, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("expected ADDRESS/PREFIX, like {example}"))?;
    let addr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an {family} address"))?;
    let prefix = p
        .parse()
        .map_err(|_| format!("{p:?} is not a prefix length"))?;
    Ok((addr, prefix))
}

/// `ipv4`: the bridge's address and its subnet, "10.0.3.1/24": a host address (not the
/// network's or the broadcast) of a /8../30 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BridgeIpv4(Ipv4Network);

/// The managed bridge's address unless rlxc.toml says otherwise.
pub const DEFAULT_BRIDGE_IPV4: BridgeIpv4 =
    match Ipv4Network::new_checked(Ipv4Addr::new(10, 0, 3, 1), 24) {
        Some(n) => BridgeIpv4(n),
        None => panic!("the default bridge address is a valid CIDR"),
    };

impl BridgeIpv4 {
    /// The bridge's own address.
    pub fn addr(self) -> Ipv4Addr {
        self.0.ip()
    }

    pub fn prefix(self) -> u8 {
        self.0.prefix()
    }
}

impl FromStr for BridgeIpv4 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let why = |w: String| format!("{s:?}: {w}");
        let (addr, prefix) = address_prefix::<Ipv4Addr>(s, "10.0.3.1/24", "IPv4").map_err(why)?;
        if !(8..=30).contains(&prefix) {
            return Err(why(format!("prefix /{prefix} must be between /8 and /30")));
        }
        let net = Ipv4Network::new(addr, prefix).map_err(|e| why(e.to_string()))?;
        if addr == net.network() || addr == net.broadcast() {
            return Err(why(format!(
                "{addr} is the network or broadcast address of {}/{prefix}",
                net.network()
            )));
        }
        Ok(BridgeIpv4(net))
    }
}

impl fmt::Display for BridgeIpv4 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `ipv6`: the bridge's IPv6 address in a /64 (router advertisements, SLAAC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BridgeIpv6(pub Ipv6Network);

impl FromStr for BridgeIpv6 {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let why = |w: String| format!("{s:?}: {w}");
        let (addr, prefix) =
            address_prefix::<std::net::Ipv6Addr>(s, "fd42:10:0:3::1/64", "IPv6").map_err(why)?;
        if prefix != 64 {
            return Err(why(format!(
                "prefix /{prefix}: router advertisements (SLAAC) need a /64"
            )));
        }
        Ipv6Network::new(addr, prefix)
            .map(BridgeIpv6)
            .map_err(|e| why(e.to_string()))
    }
}

impl fmt::Display for BridgeIpv6 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `dhcp_range`: "10.0.3.2,10.0.3.99", the first and last address of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DhcpRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl FromStr for DhcpRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let why = |w: String| format!("{s:?}: {w}");
        let (a, b) = s
            .split_once(',')
            .ok_or_else(|| why("expected FIRST,LAST like 10.0.3.2,10.0.3.99".into()))?;
        let addr = |x: &str| {
            x.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| why(format!("{x:?} is not an IPv4 address")))
        };
        Ok(DhcpRange {
            first: addr(a)?,
            last: addr(b)?,
        })
    }
}

impl fmt::Display for DhcpRange {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{},{}", self.first, self.last)
    }
}

try_from_string!(BridgeIpv4, BridgeIpv6, DhcpRange);

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_toml;

    #[derive(Debug, Deserialize)]
    struct One<T> {
        v: T,
    }

    fn bad<T: serde::de::DeserializeOwned + fmt::Debug>(text: &str, why: &str) {
        let e = parse_toml::<One<T>>(Path::new("rlxc.toml"), &format!("v = {text:?}\n"))
            .expect_err(text)
            .to_string();
        assert!(
            e.contains(&format!("line 1 (`v = {text:?}`): v = {text:?}: ")),
            "{e}"
        );
        assert!(e.contains(why), "{text}: {e}");
    }

    #[test]
    fn bridge_addresses() {
        let b: BridgeIpv4 = "10.0.3.1/24".parse().unwrap();
        assert_eq!(b, DEFAULT_BRIDGE_IPV4);
        assert_eq!((b.addr(), b.prefix()), (Ipv4Addr::new(10, 0, 3, 1), 24));
        assert_eq!(b.to_string(), "10.0.3.1/24");
        assert_eq!(
            parse_toml::<One<BridgeIpv4>>(Path::new("f"), "v = \"10.21.0.1/16\"")
                .unwrap()
                .v
                .prefix(),
            16
        );
        bad::<BridgeIpv4>("10.0.3.0/24", "network or broadcast address of 10.0.3.0/24");
        bad::<BridgeIpv4>("10.0.3.255/24", "network or broadcast");
        bad::<BridgeIpv4>("10.0.3.1", "expected ADDRESS/PREFIX");
        bad::<BridgeIpv4>("10.0.3.1/31", "between /8 and /30");
        bad::<BridgeIpv4>("10.0.3.x/24", "\"10.0.3.x\" is not an IPv4 address");
    }

    #[test]
    fn bridge_ipv6() {
        let v: BridgeIpv6 = "fd42:10:0:3::1/64".parse().unwrap();
        assert_eq!(v.0.prefix(), 64);
        assert_eq!(v.to_string(), "fd42:10:0:3::1/64");
        bad::<BridgeIpv6>("fd42:10:0:3::1/48", "need a /64");
        bad::<BridgeIpv6>("fd42::g/64", "not an IPv6 address");
        bad::<BridgeIpv6>("fd42::1", "expected ADDRESS/PREFIX");
    }

    #[test]
    fn dhcp_ranges() {
        let r: DhcpRange = "10.0.3.2, 10.0.3.99".parse().unwrap();
        assert_eq!(r.first, Ipv4Addr::new(10, 0, 3, 2));
        assert_eq!(r.to_string(), "10.0.3.2,10.0.3.99");
        bad::<DhcpRange>("10.0.3.2-10.0.3.99", "expected FIRST,LAST");
        bad::<DhcpRange>("10.0.3.2,10.0.3.x", "is not an IPv4 address");
    }
}
