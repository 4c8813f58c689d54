//! Whether a host process holds a port rlxc is about to publish, and which one. The
//! kernel answers the first question exactly (a bind, as the process's own would be,
//! fails); /proc names the process: the port's socket inode in /proc/net, the process
//! with that inode among its descriptors.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use crate::config::Proto;

/// Why a host port cannot be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// A socket of a host process has it.
    Process {
        port: u16,
        /// (pid, command name), when /proc shows it.
        by: Option<(i32, String)>,
    },
    /// The address is none of the host's.
    NotLocal(Ipv4Addr),
}

/// The first port of `ports` on `addr` (all addresses: None) that a host socket holds.
/// A TCP probe binds as a server does (SO_REUSEADDR, which std sets): only listeners
/// and sockets bound without it are in its way, not connections in TIME_WAIT.
pub fn first_taken(
    proto: Proto,
    addr: Option<Ipv4Addr>,
    ports: impl Iterator<Item = u16>,
) -> Option<Taken> {
    let ip = addr.unwrap_or(Ipv4Addr::UNSPECIFIED);
    for port in ports {
        let sa = SocketAddrV4::new(ip, port);
        let res = match proto {
            Proto::Tcp => TcpListener::bind(sa).map(drop),
            Proto::Udp => UdpSocket::bind(sa).map(drop),
        };
        match res {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Some(Taken::Process {
                    port,
                    by: process_of(proto, port, Duration::from_secs(2)),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
                return Some(Taken::NotLocal(ip))
            }
            _ => {}
        }
    }
    None
}

/// Socket inodes bound to `port` in this network namespace: listeners first (TCP).
fn inodes(proto: Proto, port: u16) -> Vec<u64> {
    let mut found: Vec<(bool, u64)> = Vec::new();
    for v in ["", "6"] {
        let f = format!("/proc/net/{}{v}", proto.as_str());
        let text = std::fs::read_to_string(f).unwrap_or_default();
        found.extend(parse_proc_net(&text, port));
    }
    found.sort_by_key(|(listening, _)| !listening);
    found.into_iter().map(|(_, i)| i).collect()
}

/// (listening, inode) of the entries of a /proc/net/{tcp,udp}[6] table on local `port`.
fn parse_proc_net(text: &str, port: u16) -> Vec<(bool, u64)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            let p = u16::from_str_radix(local_port, 16).ok()?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            let listening = *f.get(3)? == "0A";
            (p == port && inode != 0).then_some((listening, inode))
        })
        .collect()
}

/// The process holding a socket on `port`, searched for at most `limit`.
fn process_of(proto: Proto, port: u16, limit: Duration) -> Option<(i32, String)> {
    let wanted: Vec<String> = inodes(proto, port)
        .iter()
        .map(|i| format!("socket:[{i}]"))
        .collect();
    if wanted.is_empty() {
        return None;
    }
    let deadline = Instant::now() + limit;
    let procs = std::fs::read_dir("/proc").ok()?;
    for pid in procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
    {
        if Instant::now() > deadline {
            return None;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        let holds = fds.flatten().any(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| wanted.iter().any(|w| t.as_os_str() == w.as_str()))
        });
        if holds {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            return Some((pid, comm.trim().to_string()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_entries_on_the_port_listeners_marked() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                 0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0 100 0 0 10 0\n\
                 1: 0100007F:1F90 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0 20 4 30 10 -1\n\
                 2: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0 100 0 0 10 0\n\
                 3: 0100007F:1F90 0100007F:A001 06 00000000:00000000 03:00000F2A 00000000     0        0 0 3 0\n";
        assert_eq!(parse_proc_net(t, 8080), [(true, 4242), (false, 4343)]);
        assert_eq!(parse_proc_net(t, 8081), [(true, 4444)]);
    }

    /// A listener of this very process is found, and named.
    #[test]
    fn a_listener_is_taken_and_its_process_named() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got = first_taken(Proto::Tcp, None, [port].into_iter());
        let me = std::process::id() as i32;
        match got {
            Some(Taken::Process { port: p, by }) => {
                assert_eq!(p, port);
                assert_eq!(by.map(|b| b.0), Some(me));
            }
            other => panic!("{other:?}"),
        }
        drop(l);
        assert_eq!(first_taken(Proto::Tcp, None, [port].into_iter()), None);
        assert_eq!(
            first_taken(
                Proto::Udp,
                Some("192.0.2.1".parse().unwrap()),
                [port].into_iter()
            ),
            Some(Taken::NotLocal("192.0.2.1".parse().unwrap()))
        );
    }
}
