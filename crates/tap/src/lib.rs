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

pub mod diagnose;
pub mod error;
pub mod fault;
pub mod fdpass;
pub mod link;
pub mod name;
pub mod netlink;
pub mod sys;
pub mod tap;

pub use error::{Error, OsError, Result};
pub use name::{parse_name, IfName};
pub use sys::{RealSys, Sys};
pub use tap::{
    close_all, delete_tap, open_tap, probe_features, probe_offloads, tun_features, Features,
    OpenOptions, Tap, Want, ALL_OFFLOADS, MAX_QUEUES, TUN_PATH, VHOST_NET_PATH, VNET_HDR_SIZES,
};
