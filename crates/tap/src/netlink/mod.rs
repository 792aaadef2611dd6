//! rtnetlink (`NETLINK_ROUTE`) without a netlink crate: links, bridge
//! ports, addresses and routes, in the network namespace of the calling
//! thread (a socket belongs to the namespace it was created in, and keeps
//! working from any thread afterwards).
//!
//! - [`msg`]: building requests and reading replies (`nlmsghdr`, `nlattr`,
//!   the rtnetlink family headers), allocation-free on the read side.
//! - [`Netlink`] ([`socket`]): one socket, sequence numbers, acks, dumps
//!   (multipart until `NLMSG_DONE`, retried when interrupted), the kernel's
//!   error text from extended acks.
//! - [`link`], [`addr`], [`route`]: the operations, as methods of [`Netlink`].
//!
//! Every socket and every datagram goes through [`crate::sys::Sys`]
//! (`netlink_socket`, `netlink_send`, `netlink_recv`), so tests can fail
//! each one. Errors are [`crate::Error::Os`] with `syscall` naming the
//! request (`netlink(RTM_NEWLINK)`) and the kernel's extended-ack message,
//! when it sent one, as the hint.
//!
//! Constants are the values of the Linux UAPI headers (`<linux/netlink.h>`,
//! `<linux/rtnetlink.h>`, `<linux/if_link.h>`, `<linux/if_addr.h>`); the
//! unit tests check the ones the libc crate also has.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod addr;
pub mod link;
pub mod msg;
pub mod route;
pub mod socket;
// The recorded bytes are little-endian, as every target vmtap builds for.
#[cfg(all(test, target_endian = "little"))]
mod tests;

pub use addr::{Address, IpFamily};
pub use link::{
    BridgePort, BridgePortEntry, Link, LinkChange, LinkFilter, LinkRef, LinkStats, MacvlanMode,
    MacvtapSpec, TunInfo,
};
pub use route::{Route, RouteSpec};
pub use socket::Netlink;

// <linux/netlink.h>: message types and flags.
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_ECHO: u16 = 0x08;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// GET: `NLM_F_ROOT | NLM_F_MATCH`.
pub const NLM_F_DUMP: u16 = 0x300;
/// NEW: replace an existing object.
pub const NLM_F_REPLACE: u16 = 0x100;
/// NEW: fail if it exists.
pub const NLM_F_EXCL: u16 = 0x200;
/// NEW: create it if it does not exist.
pub const NLM_F_CREATE: u16 = 0x400;
/// ACK/ERROR: the request was not copied into the error.
pub const NLM_F_CAPPED: u16 = 0x100;
/// ACK/ERROR/DONE: extended-ack attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLMSGERR_ATTR_OFFS: u16 = 2;

// <linux/rtnetlink.h>: message types.
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_SETLINK: u16 = 19;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;

// Address families (`ifi_family` and friends).
pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_BRIDGE: u8 = 7;
pub const AF_INET6: u8 = 10;

// <linux/if.h>: `ifi_flags`.
pub const IFF_UP: u32 = 0x1;
pub const IFF_BROADCAST: u32 = 0x2;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_RUNNING: u32 = 0x40;
pub const IFF_NOARP: u32 = 0x80;
pub const IFF_PROMISC: u32 = 0x100;
pub const IFF_ALLMULTI: u32 = 0x200;
pub const IFF_MASTER: u32 = 0x400;
pub const IFF_SLAVE: u32 = 0x800;
pub const IFF_MULTICAST: u32 = 0x1000;
pub const IFF_LOWER_UP: u32 = 0x10000;
pub const IFF_DORMANT: u32 = 0x20000;

// <linux/if_link.h>: link attributes.
pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_BROADCAST: u16 = 2;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINK: u16 = 5;
pub const IFLA_MASTER: u16 = 10;
pub const IFLA_PROTINFO: u16 = 12;
pub const IFLA_TXQLEN: u16 = 13;
pub const IFLA_OPERSTATE: u16 = 16;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_IFALIAS: u16 = 20;
pub const IFLA_STATS64: u16 = 23;
pub const IFLA_EXT_MASK: u16 = 29;
pub const IFLA_NUM_TX_QUEUES: u16 = 31;
pub const IFLA_NUM_RX_QUEUES: u16 = 32;
pub const IFLA_CARRIER: u16 = 33;
pub const IFLA_LINK_NETNSID: u16 = 37;
pub const IFLA_MIN_MTU: u16 = 50;
pub const IFLA_MAX_MTU: u16 = 51;

pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
pub const IFLA_INFO_SLAVE_KIND: u16 = 4;
pub const IFLA_INFO_SLAVE_DATA: u16 = 5;

pub const IFLA_TUN_OWNER: u16 = 1;
pub const IFLA_TUN_GROUP: u16 = 2;
pub const IFLA_TUN_TYPE: u16 = 3;
pub const IFLA_TUN_PI: u16 = 4;
pub const IFLA_TUN_VNET_HDR: u16 = 5;
pub const IFLA_TUN_PERSIST: u16 = 6;
pub const IFLA_TUN_MULTI_QUEUE: u16 = 7;
pub const IFLA_TUN_NUM_QUEUES: u16 = 8;
pub const IFLA_TUN_NUM_DISABLED_QUEUES: u16 = 9;

pub const IFLA_MACVLAN_MODE: u16 = 1;

pub const IFLA_BRPORT_STATE: u16 = 1;
pub const IFLA_BRPORT_PRIORITY: u16 = 2;
pub const IFLA_BRPORT_COST: u16 = 3;
/// Hairpin mode.
pub const IFLA_BRPORT_MODE: u16 = 4;
pub const IFLA_BRPORT_LEARNING: u16 = 8;
pub const IFLA_BRPORT_UNICAST_FLOOD: u16 = 9;
pub const IFLA_BRPORT_MCAST_FLOOD: u16 = 27;
pub const IFLA_BRPORT_BCAST_FLOOD: u16 = 30;
pub const IFLA_BRPORT_ISOLATED: u16 = 33;

// <linux/if_addr.h>
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_LABEL: u16 = 3;
pub const IFA_BROADCAST: u16 = 4;
pub const IFA_FLAGS: u16 = 8;

// <linux/rtnetlink.h>: routes.
pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_PRIORITY: u16 = 6;
pub const RTA_PREFSRC: u16 = 7;
pub const RTA_TABLE: u16 = 15;

pub const RT_TABLE_MAIN: u8 = 254;
pub const RT_TABLE_LOCAL: u8 = 255;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
/// In a delete request: whatever the route's scope.
pub const RT_SCOPE_NOWHERE: u8 = 255;
pub const RTPROT_UNSPEC: u8 = 0;
pub const RTPROT_KERNEL: u8 = 2;
/// What `ip route add` sets: "installed by the administrator".
pub const RTPROT_BOOT: u8 = 3;
pub const RTN_UNSPEC: u8 = 0;
pub const RTN_UNICAST: u8 = 1;

/// The `syscall` label of a request type: `netlink(RTM_NEWLINK)`.
pub fn label(msg_type: u16) -> &'static str {
    match msg_type {
        RTM_NEWLINK => "netlink(RTM_NEWLINK)",
        RTM_DELLINK => "netlink(RTM_DELLINK)",
        RTM_GETLINK => "netlink(RTM_GETLINK)",
        RTM_SETLINK => "netlink(RTM_SETLINK)",
        RTM_NEWADDR => "netlink(RTM_NEWADDR)",
        RTM_DELADDR => "netlink(RTM_DELADDR)",
        RTM_GETADDR => "netlink(RTM_GETADDR)",
        RTM_NEWROUTE => "netlink(RTM_NEWROUTE)",
        RTM_DELROUTE => "netlink(RTM_DELROUTE)",
        RTM_GETROUTE => "netlink(RTM_GETROUTE)",
        _ => "netlink",
    }
}

/// The label of the request in `msg` (its `nlmsg_type` at bytes 4..6), for
/// call tracing ([`crate::fault::FaultSys`]).
pub fn request_label(msg: &[u8]) -> &'static str {
    match msg.get(4..6) {
        Some(&[a, b]) => label(u16::from_ne_bytes([a, b])),
        _ => "netlink",
    }
}

#[cfg(test)]
mod constant_tests {
    use super::*;

    #[test]
    fn constants_match_libc() {
        assert_eq!(i32::from(NLMSG_ERROR), libc::NLMSG_ERROR);
        assert_eq!(i32::from(NLMSG_DONE), libc::NLMSG_DONE);
        assert_eq!(i32::from(NLMSG_OVERRUN), libc::NLMSG_OVERRUN);
        assert_eq!(i32::from(NLM_F_REQUEST), libc::NLM_F_REQUEST);
        assert_eq!(i32::from(NLM_F_MULTI), libc::NLM_F_MULTI);
        assert_eq!(i32::from(NLM_F_ACK), libc::NLM_F_ACK);
        assert_eq!(i32::from(NLM_F_ECHO), libc::NLM_F_ECHO);
        assert_eq!(i32::from(NLM_F_DUMP_INTR), libc::NLM_F_DUMP_INTR);
        assert_eq!(i32::from(NLM_F_DUMP), libc::NLM_F_DUMP);
        assert_eq!(i32::from(NLM_F_EXCL), libc::NLM_F_EXCL);
        assert_eq!(i32::from(NLM_F_CREATE), libc::NLM_F_CREATE);
        assert_eq!(i32::from(NLA_F_NESTED), libc::NLA_F_NESTED);
        assert_eq!(RTM_NEWLINK, libc::RTM_NEWLINK);
        assert_eq!(RTM_DELLINK, libc::RTM_DELLINK);
        assert_eq!(RTM_GETLINK, libc::RTM_GETLINK);
        assert_eq!(RTM_SETLINK, libc::RTM_SETLINK);
        assert_eq!(RTM_NEWADDR, libc::RTM_NEWADDR);
        assert_eq!(RTM_DELADDR, libc::RTM_DELADDR);
        assert_eq!(RTM_GETADDR, libc::RTM_GETADDR);
        assert_eq!(RTM_NEWROUTE, libc::RTM_NEWROUTE);
        assert_eq!(RTM_DELROUTE, libc::RTM_DELROUTE);
        assert_eq!(RTM_GETROUTE, libc::RTM_GETROUTE);
        assert_eq!(i32::from(AF_INET), libc::AF_INET);
        assert_eq!(i32::from(AF_INET6), libc::AF_INET6);
        assert_eq!(i32::from(AF_BRIDGE), libc::AF_BRIDGE);
        assert_eq!(IFF_UP as i32, libc::IFF_UP);
        assert_eq!(IFF_LOWER_UP as i32, libc::IFF_LOWER_UP);
        assert_eq!(IFF_MULTICAST as i32, libc::IFF_MULTICAST);
        for (ours, theirs) in [
            (IFLA_ADDRESS, libc::IFLA_ADDRESS),
            (IFLA_IFNAME, libc::IFLA_IFNAME),
            (IFLA_MTU, libc::IFLA_MTU),
            (IFLA_LINK, libc::IFLA_LINK),
            (IFLA_MASTER, libc::IFLA_MASTER),
            (IFLA_PROTINFO, libc::IFLA_PROTINFO),
            (IFLA_TXQLEN, libc::IFLA_TXQLEN),
            (IFLA_OPERSTATE, libc::IFLA_OPERSTATE),
            (IFLA_LINKINFO, libc::IFLA_LINKINFO),
            (IFLA_IFALIAS, libc::IFLA_IFALIAS),
            (IFLA_STATS64, libc::IFLA_STATS64),
            (IFLA_EXT_MASK, libc::IFLA_EXT_MASK),
            (IFLA_NUM_TX_QUEUES, libc::IFLA_NUM_TX_QUEUES),
            (IFLA_NUM_RX_QUEUES, libc::IFLA_NUM_RX_QUEUES),
            (IFLA_CARRIER, libc::IFLA_CARRIER),
            (IFLA_LINK_NETNSID, libc::IFLA_LINK_NETNSID),
            (IFLA_MIN_MTU, libc::IFLA_MIN_MTU),
            (IFLA_MAX_MTU, libc::IFLA_MAX_MTU),
            (IFLA_INFO_KIND, libc::IFLA_INFO_KIND),
            (IFLA_INFO_DATA, libc::IFLA_INFO_DATA),
            (IFLA_INFO_SLAVE_KIND, libc::IFLA_INFO_SLAVE_KIND),
            (IFLA_INFO_SLAVE_DATA, libc::IFLA_INFO_SLAVE_DATA),
        ] {
            assert_eq!(ours, theirs);
        }
        assert_eq!(RT_TABLE_MAIN, libc::RT_TABLE_MAIN);
        assert_eq!(RT_SCOPE_LINK, libc::RT_SCOPE_LINK);
        assert_eq!(RT_SCOPE_NOWHERE, libc::RT_SCOPE_NOWHERE);
        assert_eq!(RTPROT_BOOT, libc::RTPROT_BOOT);
        assert_eq!(RTN_UNICAST, libc::RTN_UNICAST);
        assert_eq!(RTA_DST, libc::RTA_DST);
        assert_eq!(RTA_OIF, libc::RTA_OIF);
        assert_eq!(RTA_GATEWAY, libc::RTA_GATEWAY);
        assert_eq!(RTA_PRIORITY, libc::RTA_PRIORITY);
        assert_eq!(RTA_PREFSRC, libc::RTA_PREFSRC);
        assert_eq!(RTA_TABLE, libc::RTA_TABLE);
        assert_eq!(IFA_ADDRESS, libc::IFA_ADDRESS);
        assert_eq!(IFA_LOCAL, libc::IFA_LOCAL);
        assert_eq!(IFA_LABEL, libc::IFA_LABEL);
        assert_eq!(IFA_BROADCAST, libc::IFA_BROADCAST);
    }

    #[test]
    fn labels_name_the_request() {
        assert_eq!(label(RTM_NEWADDR), "netlink(RTM_NEWADDR)");
        assert_eq!(label(999), "netlink");
        let mut msg = [0u8; 16];
        msg[4..6].copy_from_slice(&RTM_DELROUTE.to_ne_bytes());
        assert_eq!(request_label(&msg), "netlink(RTM_DELROUTE)");
        assert_eq!(request_label(&msg[..5]), "netlink");
    }
}
