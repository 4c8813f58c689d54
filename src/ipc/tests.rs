use super::*;
use std::io::BufReader;

fn round_trip<T>(msg: T)
where
    T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut buf = Vec::new();
    write_msg(&mut buf, &msg).unwrap();
    assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1, "one line");
    assert_eq!(buf.last(), Some(&b'\n'));
    let back: T = read_msg(&mut BufReader::new(&buf[..])).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn every_message_round_trips_on_one_line() {
    round_trip(Hello::current());
    for r in [
        Request::State,
        Request::Stop { timeout_secs: 30 },
        Request::Kill,
        Request::Reboot,
        Request::Console { tty: 0 },
        Request::Console { tty: 2 },
        Request::Winsize {
            rows: 40,
            cols: 120,
            tty: 0,
        },
        Request::Describe,
    ] {
        round_trip(r);
    }
    for r in [
        Response::Running { pid: 42 },
        Response::Stopped,
        Response::KilledAfterTimeout {
            signal: 30,
            waited_secs: 5,
            hint: Some("add a powerfail line".into()),
        },
        Response::Described {
            init: "systemd 262".into(),
            cgroup_layout: "unified (why)".into(),
            ttys: 4,
        },
        Response::Ok,
        Response::Error {
            message: "a\nmultiline\n\"quoted\" reason".into(),
        },
    ] {
        round_trip(r);
    }
    round_trip(Status::Started { pid: 7 });
    round_trip(Status::Ended {
        failure: Some("init exited with status 1".into()),
    });
    round_trip(Status::Failed {
        reason: "no\nway".into(),
    });
    round_trip(ToChild::Reached {
        stage: Stage::Network,
    });
    round_trip(FromChild::Reached {
        stage: Stage::Namespaces,
    });
    round_trip(FromChild::Failed {
        reason: "mount: EINVAL".into(),
    });
}

#[test]
fn the_wire_form_names_what_it_is() {
    let mut buf = Vec::new();
    write_msg(&mut buf, &Request::Stop { timeout_secs: 5 }).unwrap();
    assert_eq!(buf, b"{\"request\":\"stop\",\"timeout_secs\":5}\n");
}

#[test]
fn another_version_is_named_not_misread() {
    let theirs = Hello { rlxc_protocol: 99 };
    let e = check_hello(&theirs).unwrap_err().to_string();
    assert!(e.contains("protocol 99") && e.contains(&format!("this rlxc {VERSION}")));
    assert!(check_hello(&Hello::current()).is_ok());
    // The text protocol of rlxc before this one is not taken for anything.
    let e = read_msg::<Response>(&mut BufReader::new(&b"RUNNING 42\n"[..])).unwrap_err();
    assert!(matches!(e, IpcError::Malformed(..)), "{e}");
    assert!(e.to_string().contains("RUNNING 42"), "{e}");
}

#[test]
fn truncated_long_and_empty_input_are_told_apart() {
    let e = read_msg::<Response>(&mut BufReader::new(&b"{\"answer\":\"ok\""[..])).unwrap_err();
    assert!(matches!(e, IpcError::Truncated), "{e}");
    let e = read_msg::<Response>(&mut BufReader::new(&b""[..])).unwrap_err();
    assert!(matches!(e, IpcError::Closed), "{e}");
    let long = vec![b'x'; MAX_MESSAGE + 10];
    let e = read_msg::<Response>(&mut BufReader::new(&long[..])).unwrap_err();
    assert!(matches!(e, IpcError::TooLong), "{e}");
    let e = read_line_unbuffered::<Response>(&long[..]).unwrap_err();
    assert!(matches!(e, IpcError::TooLong), "{e}");
    // Unknown fields (of variants with fields: serde cannot check unit variants of a
    // tagged enum) and unknown variants are refused, not ignored.
    for bad in [
        &b"{\"answer\":\"running\",\"pid\":1,\"extra\":1}\n"[..],
        &b"{\"answer\":\"maybe\"}\n"[..],
    ] {
        let e = read_msg::<Response>(&mut BufReader::new(bad)).unwrap_err();
        assert!(matches!(e, IpcError::Malformed(..)), "{e}");
    }
}

#[test]
fn an_unbuffered_read_leaves_what_follows() {
    let mut data = Vec::new();
    write_msg(&mut data, &Response::Ok).unwrap();
    data.extend_from_slice(b"console output");
    let mut r = &data[..];
    let first: Response = read_line_unbuffered(&mut r).unwrap();
    assert_eq!(first, Response::Ok);
    assert_eq!(r, b"console output");
}

#[test]
fn packets_over_a_real_socket_pair() {
    use std::os::fd::AsFd;
    let (a, b) = nix::sys::socket::socketpair(
        nix::sys::socket::AddressFamily::Unix,
        nix::sys::socket::SockType::SeqPacket,
        None,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    assert_eq!(recv_packet::<FromChild>(b.as_fd(), false).unwrap(), None);
    let msg = FromChild::Reached {
        stage: Stage::Namespaces,
    };
    send_packet(a.as_fd(), &msg).unwrap();
    send_packet(a.as_fd(), &FromChild::Failed { reason: "x".into() }).unwrap();
    assert_eq!(recv_packet(b.as_fd(), true).unwrap(), Some(msg));
    assert!(matches!(
        recv_packet::<FromChild>(b.as_fd(), true).unwrap(),
        Some(FromChild::Failed { .. })
    ));
    drop(a);
    assert_eq!(recv_packet::<FromChild>(b.as_fd(), true).unwrap(), None);
}

#[test]
fn a_failure_becomes_the_crate_error_with_its_fault_its_details_and_the_version_hint() {
    let peer = PathBuf::from("/run/rlxc/c1.tag/command");
    let cases = [
        (IpcError::Version { ours: 1, theirs: 0 }, IpcFault::Foreign),
        (
            IpcError::Malformed("x".into(), "y".into()),
            IpcFault::Foreign,
        ),
        (IpcError::Closed, IpcFault::Lost),
        (IpcError::Truncated, IpcFault::Lost),
        (IpcError::Io(std::io::Error::other("reset")), IpcFault::Lost),
        (IpcError::TooLong, IpcFault::Other),
    ];
    for (e, want) in cases {
        let detail = e.to_string();
        let err = e.at(peer.clone());
        assert!(
            matches!(&err, Error::Ipc { fault, .. } if *fault == want),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("cannot talk to the monitor at {}", peer.display())
        );
        // Each detail once: an io error is not repeated as its own cause.
        let causes: Vec<String> = crate::error::causes(&err).map(|c| c.to_string()).collect();
        assert_eq!(causes, [detail]);
        let hint = err.hint().unwrap_or_default();
        assert_eq!(
            hint.contains("another rlxc version"),
            want == IpcFault::Foreign,
            "{hint}"
        );
    }
}
