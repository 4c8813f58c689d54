//! The one protocol between rlxc's processes: rlxc and a container's monitor (the
//! command socket), the monitor and the rlxc-start that forked it (the status pipe),
//! the monitor and the container's first process (the sync socket), the dnsmasq
//! supervisor and the rlxc that started it.
//!
//! Every message is one JSON object on one line (serde; compact JSON never contains a
//! raw newline), at most `MAX_MESSAGE` bytes. A connection to a monitor opens with a
//! `Hello` naming the protocol version, so a monitor started by another rlxc version
//! and this one say that they disagree instead of misreading each other.

pub mod client;
pub mod events;
mod frame;

pub use frame::{
    read_line_unbuffered, read_msg, recv_packet, recv_packet_with_fds, send_packet,
    send_packet_with_fds, write_msg,
};

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, IpcFault};

/// Bumped whenever a message changes shape.
pub const VERSION: u32 = 1;

/// Longer lines are refused: no message comes near it, and a reader never grows
/// without bound on a peer that sends no newline.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// The first line on a connection to a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    pub rlxc_protocol: u32,
}

impl Hello {
    pub fn current() -> Self {
        Hello {
            rlxc_protocol: VERSION,
        }
    }
}

/// What a client asks a monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    State,
    /// Halt cleanly, killing after `timeout_secs`.
    Stop {
        timeout_secs: u64,
    },
    Kill,
    Reboot,
    /// After the `Ok` answer the connection carries raw console bytes both ways:
    /// /dev/console's (`tty` 0, the only one before ttys were) or /dev/ttyN's.
    Console {
        #[serde(default, skip_serializing_if = "is_zero")]
        tty: u32,
    },
    Winsize {
        rows: u16,
        cols: u16,
        #[serde(default, skip_serializing_if = "is_zero")]
        tty: u32,
    },
    /// Let the container use one more device node (`c MAJOR:MINOR rwm`).
    AllowDevice {
        rule: String,
    },
    /// Take back one grant of a device node.
    DenyDevice {
        rule: String,
    },
    /// Move host interface `host` into the container, named `inside` there; it comes
    /// back at the stop.
    AddNic {
        host: String,
        inside: String,
    },
    /// Move the container's interface `inside` (one AddNic lent) back to the host.
    DelNic {
        inside: String,
    },
    /// `then` (a stop, kill or reboot), answered `Ok` as soon as the monitor has it,
    /// not when it is done (`rlxc-stop -W`: returns only once the request is taken).
    NoWait {
        then: Box<Request>,
    },
    /// What this run chose: its init, cgroup view and ttys (for rlxc-info). A monitor
    /// before it answers with an `Error`, which callers take as "not known".
    Describe,
}

/// A monitor's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// init runs with this (host) pid.
    Running {
        pid: i32,
    },
    Stopped,
    /// A stop's answer when init did not halt in time and was killed: the signal sent,
    /// how long it was given, and why it may not have halted, where that is known.
    KilledAfterTimeout {
        signal: i32,
        waited_secs: u64,
        hint: Option<String>,
    },
    /// The answer to `Describe`.
    Described {
        init: String,
        cgroup_layout: String,
        ttys: u32,
    },
    Ok,
    Error {
        message: String,
    },
}

/// How a start went: the monitor to rlxc-start, the dnsmasq supervisor to its starter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", deny_unknown_fields)]
pub enum Status {
    Started {
        pid: i32,
    },
    Failed {
        reason: String,
    },
    /// rlxc-execute's command ended with this exit status (after `Started`).
    Exited {
        code: i32,
    },
    /// A monitor's last word on the status pipe, when its run is over: `failure` says
    /// how init ended when it was not halted or rebooted cleanly (a foreground
    /// rlxc-start reports it and exits non-zero).
    Ended {
        failure: Option<String>,
    },
}

/// The container's first process and its monitor meet at these points of the start.
/// Each side does its part up to a stage and then waits for the other, so a new stage
/// (a user namespace's id maps, say) is one more variant and one more wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The child is in its namespaces and cgroups (the parent may now write what
    /// needs its pid: id maps, network interfaces).
    Namespaces,
    /// An unprivileged container's: the monitor wrote the child's id maps and sends
    /// its root, an idmapped mount, with this message.
    IdsMapped,
    /// The child made the container's ttys in its devpts: their masters come with this
    /// message, in order (tty1 first).
    Ttys,
    /// The child is in its root (pivoted, its /dev made): the monitor may make the
    /// config's device nodes there and lend its interfaces before init runs.
    Root,
    /// The monitor has set up the container's network.
    Network,
}

/// The monitor to the child.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "parent", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToChild {
    /// The monitor's part up to `stage` is done.
    Reached { stage: Stage },
}

/// The child to the monitor. Success needs no message: the socket closes at exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "child", rename_all = "snake_case", deny_unknown_fields)]
pub enum FromChild {
    Reached { stage: Stage },
    Failed { reason: String },
}

/// Why a message could not be had.
#[derive(Debug, thiserror::Error)]
pub enum IpcError {
    // transparent: the io error is the message, not also a cause printed again under it.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    #[error("a message longer than {MAX_MESSAGE} bytes")]
    TooLong,
    #[error("a message cut short (no end of line before the connection closed)")]
    Truncated,
    #[error("a message this rlxc does not understand ({0}): {1:?}")]
    Malformed(String, String),
    #[error(
        "the other side speaks rlxc protocol {theirs}, this rlxc {ours}: it was started \
         by another version of rlxc"
    )]
    Version { ours: u32, theirs: u32 },
}

impl IpcError {
    /// What the crate's error tells callers about this failure.
    pub fn fault(&self) -> IpcFault {
        match self {
            IpcError::Version { .. } | IpcError::Malformed(..) => IpcFault::Foreign,
            IpcError::Closed | IpcError::Truncated | IpcError::Io(_) => IpcFault::Lost,
            IpcError::TooLong => IpcFault::Other,
        }
    }

    /// This failure talking to `peer`, as the crate's error.
    pub fn at(self, peer: PathBuf) -> Error {
        Error::Ipc {
            peer,
            fault: self.fault(),
            source: Box::new(self),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Check a peer's hello.
pub fn check_hello(h: &Hello) -> Result<(), IpcError> {
    if h.rlxc_protocol == VERSION {
        Ok(())
    } else {
        Err(IpcError::Version {
            ours: VERSION,
            theirs: h.rlxc_protocol,
        })
    }
}

#[cfg(test)]
mod tests;
