//! IPv4 subnets of bridges and containers: parsing and address arithmetic (pure).

use std::net::Ipv4Addr;

use crate::config::{BridgeIpv4, DhcpRange};

/// An IPv4 address with its prefix length, e.g. the bridge's 10.0.3.1/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

/// The bridge address of rlxc.toml, checked when it was read.
impl From<BridgeIpv4> for Subnet {
    fn from(b: BridgeIpv4) -> Self {
        Subnet {
            addr: b.addr(),
            prefix: b.prefix(),
        }
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        mask(self.prefix)
    }

    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// Whether the route `net/prefix` and this subnet share any address.
    pub fn overlaps(&self, net: Ipv4Addr, prefix: u8) -> bool {
        let m = mask(prefix) & self.mask();
        u32::from(net) & m == u32::from(self.addr) & m
    }

    pub fn cidr(&self) -> String {
        format!("{}/{}", self.network(), self.prefix)
    }

    /// Every host address but the bridge's: the default DHCP pool.
    pub fn host_range(&self) -> (Ipv4Addr, Ipv4Addr) {
        let mut first = u32::from(self.network()) + 1;
        if first == u32::from(self.addr) {
            first += 1;
        }
        (
            Ipv4Addr::from(first),
            Ipv4Addr::from(u32::from(self.broadcast()) - 1),
        )
    }

    /// A usable host address of this subnet that is not the bridge's own.
    pub fn is_host(&self, a: Ipv4Addr) -> bool {
        self.contains(a) && a != self.addr && a != self.network() && a != self.broadcast()
    }
}

fn mask(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

/// A DHCP pool of host addresses inside `subnet` (`dhcp_range` needs the subnet too,
/// so only its text is checked at load).
pub fn check_range(r: &DhcpRange, subnet: &Subnet) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = (r.first, r.last);
    if !subnet.is_host(a) || !subnet.is_host(b) || u32::from(a) > u32::from(b) {
        return Err(format!(
            "{a}..{b} is not a range of host addresses of {}",
            subnet.cidr()
        ));
    }
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Subnet, String> {
        s.parse::<BridgeIpv4>().map(Subnet::from)
    }

    #[test]
    fn subnets() {
        let s = parse("10.0.3.1/24").unwrap();
        assert_eq!(s.network(), Ipv4Addr::new(10, 0, 3, 0));
        assert_eq!(s.broadcast(), Ipv4Addr::new(10, 0, 3, 255));
        assert_eq!(
            s.host_range(),
            (Ipv4Addr::new(10, 0, 3, 2), Ipv4Addr::new(10, 0, 3, 254))
        );
        assert!(s.contains(Ipv4Addr::new(10, 0, 3, 77)));
        assert!(s.overlaps(Ipv4Addr::new(10, 0, 0, 0), 16));
        assert!(s.overlaps(Ipv4Addr::new(10, 0, 3, 128), 25));
        assert!(!s.overlaps(Ipv4Addr::new(10, 0, 4, 0), 24));
        assert!(s.overlaps(Ipv4Addr::new(0, 0, 0, 0), 0));
        assert!(!s.is_host(s.addr));
        assert_eq!(s.cidr(), "10.0.3.0/24");
    }

    #[test]
    fn ranges() {
        let s = parse("10.0.3.1/24").unwrap();
        let range = |r: &str| check_range(&r.parse().unwrap(), &s);
        assert!(range("10.0.3.2,10.0.3.99").is_ok());
        assert!(range("10.0.3.99,10.0.3.2").is_err());
        assert!(range("10.0.4.2,10.0.4.9").is_err());
        assert!(range("10.0.3.1,10.0.3.9").is_err());
    }
}
