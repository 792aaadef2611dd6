//! vmtap-core: Linux TAP devices for virtual machines.
//!
//! The plain-Rust core of the vmtap npm package (no Node.js in it). It does
//! what Ganeti's `netdev.OpenTap` does — one `/dev/net/tun` fd per queue,
//! TUNGETFEATURES probed before IFF_VNET_HDR / IFF_MULTI_QUEUE are asked for,
//! one `/dev/vhost-net` fd per queue — with typed errors, close-on-exec fds,
//! and nothing left behind on failure.
//!
//! Every syscall goes through [`sys::Sys`], so tests can inject failures
//! ([`fault::FaultSys`]).

pub mod device;
pub mod diagnose;
pub mod error;
pub mod fault;
pub mod fdpass;
pub mod host;
pub mod link;
pub mod netlink;
pub mod open;
pub mod packet;
pub mod probe;
pub mod rules;
pub mod sys;
pub mod tun;

pub use device::{close_all, Tap};
pub use error::{Error, OsError, Result};
pub use host::delete_tap;
/// The errno type of every kernel error (nix's), for the binding.
pub use nix::errno::Errno;
pub use open::{compute_flags, open_tap, Mode, OpenOptions, Tristate};
pub use probe::{get_tun_features, probe_features, probe_offloads, Features};
pub use rules::{parse_name, IfName, ALL_OFFLOADS, MAX_QUEUES, VNET_HDR_SIZES};
pub use sys::{RealSys, Sys};
pub use tun::{TUN_PATH, VHOST_NET_PATH};
