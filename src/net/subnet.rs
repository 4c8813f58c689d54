//! IPv4 subnets of bridges and containers: parsing and address arithmetic (pure).

use std::net::Ipv4Addr;

/// An IPv4 address with its prefix length, e.g. the bridge's 10.0.3.1/24.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// "10.0.3.1/24": a host address of a /8../30 subnet (a bridge or a container).
    pub fn parse(s: &str) -> Result<Self, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or("expected ADDRESS/PREFIX, like 10.0.3.1/24")?;
        let addr: Ipv4Addr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        if !(8..=30).contains(&prefix) {
            return Err(format!("prefix /{prefix} must be between /8 and /30"));
        }
        let s = Subnet { addr, prefix };
        if s.addr == s.network() || s.addr == s.broadcast() {
            return Err(format!(
                "{addr} is the network or broadcast address of {}",
                s.cidr()
            ));
        }
        Ok(s)
    }

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

/// "10.0.3.50/24" or "10.0.3.50" → the address.
pub fn host_part(s: &str) -> Option<Ipv4Addr> {
    s.split('/').next()?.parse().ok()
}

/// "fd42::1/64" → (address, prefix), for the bridge's optional IPv6.
pub fn parse_v6(s: &str) -> Result<(std::net::Ipv6Addr, u8), String> {
    let (a, p) = s
        .split_once('/')
        .ok_or("expected ADDRESS/PREFIX, like fd42:10:0:3::1/64")?;
    let addr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv6 address"))?;
    let prefix: u8 = p
        .parse()
        .map_err(|_| format!("{p:?} is not a prefix length"))?;
    if prefix != 64 {
        return Err(format!(
            "prefix /{prefix}: router advertisements (SLAAC) need a /64"
        ));
    }
    Ok((addr, prefix))
}

/// "10.0.3.2,10.0.3.99": a DHCP pool inside `subnet`.
pub fn parse_range(s: &str, subnet: &Subnet) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (a, b) = s
        .split_once(',')
        .ok_or("expected FIRST,LAST like 10.0.3.2,10.0.3.99")?;
    let a: Ipv4Addr = a
        .trim()
        .parse()
        .map_err(|_| format!("{a:?} is not an IPv4 address"))?;
    let b: Ipv4Addr = b
        .trim()
        .parse()
        .map_err(|_| format!("{b:?} is not an IPv4 address"))?;
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

    #[test]
    fn subnets() {
        let s = Subnet::parse("10.0.3.1/24").unwrap();
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
        assert!(Subnet::parse("10.0.3.0/24").is_err());
        assert!(Subnet::parse("10.0.3.1").is_err());
        assert!(Subnet::parse("10.0.3.1/31").is_err());
        assert!(Subnet::parse("10.0.3.x/24").is_err());
    }

    #[test]
    fn ranges_and_v6() {
        let s = Subnet::parse("10.0.3.1/24").unwrap();
        assert!(parse_range("10.0.3.2,10.0.3.99", &s).is_ok());
        assert!(parse_range("10.0.3.99,10.0.3.2", &s).is_err());
        assert!(parse_range("10.0.4.2,10.0.4.9", &s).is_err());
        assert!(parse_v6("fd42:10:0:3::1/64").is_ok());
        assert!(parse_v6("fd42:10:0:3::1/48").is_err());
        assert_eq!(host_part("10.0.3.50/24"), Some(Ipv4Addr::new(10, 0, 3, 50)));
    }
}
