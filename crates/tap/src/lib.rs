//! vmtap-core: Linux TAP devices for virtual machines.
//!
//! The plain-Rust core of the vmtap npm package (no Node.js in it). It does
//! what Ganeti's `netdev.OpenTap` does — one `/dev/net/tun` fd per queue,
//! TUNGETFEATURES probed before IFF_VNET_HDR / IFF_MULTI_QUEUE are asked for,
//! one `/dev/vhost-net` fd per queue — with typed errors, close-on-exec fds,
//! and nothing left behind on failure.
//!
//! [`open_macvtap`] makes the other kind of VM NIC, a macvtap on a host
//! device, and returns the same [`Tap`].
//!
//! Every syscall goes through [`sys::Sys`], so tests can inject failures
//! ([`fault::FaultSys`]).

pub mod adopt;
pub mod device;
pub mod diagnose;
pub mod error;
pub mod fault;
pub mod fdpass;
pub mod gc;
pub mod holders;
pub mod host;
pub mod hostside;
pub mod inventory;
pub mod link;
pub mod macvtap;
pub mod netlink;
pub mod netns;
pub mod open;
pub mod packet;
pub mod peer;
pub mod probe;
pub mod rules;
pub mod sys;
pub mod tun;
pub mod uevent;

pub use adopt::adopt_tap;
pub use device::{close_all, Tap};
pub use error::{Error, OsError, Result};
pub use gc::{gc_taps, GcOptions, GcReport};
pub use holders::{tap_holders, Holder};
pub use host::delete_tap;
pub use hostside::{BridgePortFlags, Sysctl};
pub use inventory::{list_taps, TapInfo};
pub use macvtap::{open_macvtap, MacvtapLink, MacvtapOptions};
/// The errno type of every kernel error (nix's), for the binding.
pub use nix::errno::Errno;
pub use open::{compute_flags, open_tap, Mode, OpenOptions, Tristate};
pub use peer::{peer_credentials, PeerCredentials};
pub use probe::{get_tun_features, probe_features, probe_offloads, Features};
pub use rules::{
    parse_address, parse_name, parse_route, IfName, IpCidr, ALL_OFFLOADS, MAX_QUEUES,
    VNET_HDR_SIZES,
};
pub use sys::{RealSys, Sys};
pub use tun::{TUN_PATH, VHOST_NET_PATH};
