//! Tests of the netlink module that need no privileges:
//! - requests, byte for byte, against what iproute2 sends (testdata/iproute2.rs);
//! - parsers against replies recorded from Linux 6.18 (testdata/*.bin, made with a
//!   Python `socket.AF_NETLINK` script in a namespace holding: lo, veth vb1/vb0,
//!   bridge br0 with 10.1.2.3/24 and 2001:db8::5/64, macvtap mv0 (bridge mode) on vb0,
//!   persistent tap t0 (port of br0: alias "hello vm", mtu 9000, txqlen 2000, hairpin,
//!   no learning, isolated), persistent multi-queue vnet_hdr tap t1 (owner 4242, group
//!   4243), tap t2 held open by the script (not persistent); routes 10.9.0.0/16 and
//!   2001:db8:9::/48 on vb0);
//! - the socket logic (sequence numbers, restarts, errors) against a scripted `Sys`;
//! - random and mangled bytes through every reader: errors, never panics.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;

use super::addr::{self, parse_address};
use super::link::{self, parse_bridge_port, parse_link};
use super::msg::{align, messages, Ack, Msg, Request};
use super::route::{self, parse_route};
use super::*;
use crate::error::Error;
use crate::sys::{Ioctl, Sys};

include!("testdata/iproute2.rs");

const LINKS: &[u8] = include_bytes!("testdata/links.bin");
const BRIDGE: &[u8] = include_bytes!("testdata/bridge.bin");
const ADDRS: &[u8] = include_bytes!("testdata/addrs.bin");
const ROUTES: &[u8] = include_bytes!("testdata/routes.bin");
const GETLINK_T1: &[u8] = include_bytes!("testdata/getlink_t1.bin");
const ERR_EXTACK: &[u8] = include_bytes!("testdata/err_extack.bin");
const ERR_PLAIN: &[u8] = include_bytes!("testdata/err_plain.bin");
const ERR_CAPPED: &[u8] = include_bytes!("testdata/err_capped.bin");
const ERR_NODEV: &[u8] = include_bytes!("testdata/err_nodev.bin");
const ERR_STRICT_DUMP: &[u8] = include_bytes!("testdata/err_strict_dump.bin");
const ACK: &[u8] = include_bytes!("testdata/ack.bin");
const NEWLINK_ECHO: &[u8] = include_bytes!("testdata/newlink_echo.bin");
const DELLINK_ACK: &[u8] = include_bytes!("testdata/dellink_ack.bin");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ---------------------------------------------------------------- requests

/// iproute2's request as a whole message, with sequence number 1.
fn ip_msg((ty, flags, payload): (u16, u16, &[u8])) -> Vec<u8> {
    let mut v = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&1u32.to_ne_bytes());
    v.extend_from_slice(&0u32.to_ne_bytes());
    v.extend_from_slice(payload);
    v
}

fn ours(mut r: Request) -> Vec<u8> {
    r.set_seq(1);
    r.bytes().to_vec()
}

fn set(ifindex: u32, change: LinkChange) -> Vec<u8> {
    ours(link::set_request(ifindex, &change).unwrap())
}

#[test]
fn link_changes_are_ip_link_set() {
    let alias = |a: &str| LinkChange {
        alias: Some(a.into()),
        ..Default::default()
    };
    assert_eq!(set(6, alias("hello")), ip_msg(IP_SET_ALIAS));
    assert_eq!(set(6, alias("")), ip_msg(IP_CLR_ALIAS));
    let mtu = LinkChange {
        mtu: Some(9000),
        ..Default::default()
    };
    assert_eq!(set(6, mtu), ip_msg(IP_SET_MTU));
    let mac = LinkChange {
        mac: Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
        ..Default::default()
    };
    assert_eq!(set(6, mac), ip_msg(IP_SET_MAC));
    let master = |m| LinkChange {
        master: Some(m),
        ..Default::default()
    };
    assert_eq!(set(7, master(4)), ip_msg(IP_SET_MASTER));
    assert_eq!(set(7, master(0)), ip_msg(IP_SET_NOMASTER));
    let txq = LinkChange {
        txqlen: Some(2000),
        ..Default::default()
    };
    assert_eq!(set(6, txq), ip_msg(IP_SET_TXQ));
    let up = |u| LinkChange {
        up: Some(u),
        ..Default::default()
    };
    assert_eq!(set(6, up(true)), ip_msg(IP_SET_UP));
    assert_eq!(set(6, up(false)), ip_msg(IP_SET_DOWN));
}

#[test]
fn link_changes_are_checked_first() {
    let long = LinkChange {
        alias: Some("x".repeat(256)),
        ..Default::default()
    };
    assert_eq!(
        link::set_request(6, &long).unwrap_err().code(),
        "ERR_OUT_OF_RANGE"
    );
    let max = LinkChange {
        alias: Some("x".repeat(255)),
        ..Default::default()
    };
    assert!(link::set_request(6, &max).is_ok());
    let nul = LinkChange {
        alias: Some("a\0b".into()),
        ..Default::default()
    };
    assert_eq!(
        link::set_request(6, &nul).unwrap_err().code(),
        "ERR_INVALID_ARG_VALUE"
    );
    for bad in [0, 1 << 31] {
        assert_eq!(
            link::set_request(bad, &LinkChange::default())
                .unwrap_err()
                .code(),
            "ERR_OUT_OF_RANGE"
        );
    }
    for bad in [
        "",
        "a/b",
        "a:b",
        "a b",
        "a\tb",
        "a\0b",
        ".",
        "..",
        "abcdefghijklmnop",
    ] {
        assert!(link::check_ifname(bad).is_err(), "{bad:?}");
    }
    for good in ["t0", "abcdefghijklmno", "vm-0.1_x", "été"] {
        assert!(link::check_ifname(good).is_ok(), "{good:?}");
    }
}

#[test]
fn macvtap_create_and_delete_are_ip_link_add_and_del() {
    let spec = MacvtapSpec {
        name: Some("mv1".into()),
        lower: 3,
        mode: MacvlanMode::Vepa,
        ..Default::default()
    };
    let mut got = ours(link::macvtap_request(&spec).unwrap());
    // We also ask for the new link back (NLM_F_ECHO); ip does not.
    let flags = u16::from_ne_bytes([got[6], got[7]]);
    assert_eq!(flags & NLM_F_ECHO, NLM_F_ECHO);
    got[6..8].copy_from_slice(&(flags & !NLM_F_ECHO).to_ne_bytes());
    assert_eq!(got, ip_msg(IP_ADD_MVT));
    assert_eq!(ours(link::delete_request(8)), ip_msg(IP_DEL_MVT));

    // Every optional attribute, in the kernel's layouts.
    let full = MacvtapSpec {
        name: None,
        lower: 3,
        mode: MacvlanMode::Bridge,
        mac: Some([2, 0, 0, 0, 0, 1]),
        mtu: Some(1400),
        tx_queues: Some(4),
        rx_queues: Some(2),
        up: true,
    };
    let r = link::macvtap_request(&full).unwrap();
    let m = messages(r.bytes()).next().unwrap().unwrap();
    let hdr = msg::IfInfoMsg::decode(m.payload).unwrap();
    assert_eq!((hdr.flags, hdr.change), (IFF_UP, IFF_UP));
    let got: Vec<_> = msg::attrs(&m.payload[16..]).collect();
    let types: Vec<u16> = got.iter().map(|a| a.0).collect();
    assert_eq!(
        types,
        [
            IFLA_LINK,
            IFLA_ADDRESS,
            IFLA_MTU,
            IFLA_NUM_TX_QUEUES,
            IFLA_NUM_RX_QUEUES,
            IFLA_LINKINFO
        ]
    );
    assert_eq!(got[1].1, &[2, 0, 0, 0, 0, 1]);
    assert_eq!(msg::read_u32(got[3].1), Some(4));
    let mode = MacvtapSpec {
        name: Some("bad name".into()),
        ..full.clone()
    };
    assert_eq!(
        link::macvtap_request(&mode).unwrap_err().code(),
        "ERR_INVALID_ARG_VALUE"
    );
    assert!(link::macvtap_request(&MacvtapSpec { lower: 0, ..full }).is_err());
    for m in [1, 2, 4, 8, 16] {
        assert_eq!(MacvlanMode::from_raw(m).map(|x| x as u32), Some(m));
    }
    assert_eq!(MacvlanMode::from_raw(3), None);
    assert_eq!(MacvlanMode::Passthru.name(), "passthru");
}

#[test]
fn bridge_port_flags_are_bridge_link_set() {
    let port = BridgePort {
        hairpin: Some(true),
        unicast_flood: Some(false),
        learning: Some(false),
        isolated: Some(true),
        ..Default::default()
    };
    assert_eq!(ours(link::bridge_port_request(6, &port)), ip_msg(IP_BRPORT));
    let port = BridgePort {
        hairpin: Some(false),
        unicast_flood: Some(true),
        mcast_flood: Some(false),
        bcast_flood: Some(false),
        learning: Some(true),
        cost: Some(7),
        priority: Some(5),
        state: Some(3),
        isolated: Some(false),
    };
    assert_eq!(
        ours(link::bridge_port_request(6, &port)),
        ip_msg(IP_BRPORT2)
    );
    // IFLA_PROTINFO carries NLA_F_NESTED, as the kernel wants it there.
    assert_eq!(
        &ip_msg(IP_BRPORT)[34..36],
        &(IFLA_PROTINFO | NLA_F_NESTED).to_ne_bytes()
    );
    assert_eq!(ours(link::bridge_dump_request()), ip_msg(IP_BRSHOW));
}

#[test]
fn addresses_are_ip_addr() {
    let req = |add, a: &str, len| ours(addr::address_request(add, 6, &ip(a), len).unwrap());
    assert_eq!(req(true, "10.1.2.3", 24), ip_msg(IP_ADDR4));
    assert_eq!(req(true, "2001:db8::5", 64), ip_msg(IP_ADDR6));
    assert_eq!(req(false, "10.1.2.3", 24), ip_msg(IP_DELADDR4));
    assert_eq!(req(false, "2001:db8::5", 64), ip_msg(IP_DELADDR6));
    assert_eq!(ours(addr::dump_request(None, None)), ip_msg(IP_GETADDR));
    let bad = addr::address_request(true, 6, &ip("10.0.0.1"), 33).unwrap_err();
    assert_eq!(bad.code(), "ERR_OUT_OF_RANGE");
    assert!(addr::address_request(true, 6, &ip("::1"), 128).is_ok());
    assert!(addr::address_request(true, 6, &ip("::1"), 129).is_err());
    assert!(addr::address_request(true, 0, &ip("::1"), 128).is_err());
    // A dump of one family and link: ifaddrmsg { family, 0, 0, 0, index }.
    let r = ours(addr::dump_request(Some(IpFamily::V6), Some(9)));
    assert_eq!(&r[16..], &[10, 0, 0, 0, 9, 0, 0, 0]);
}

#[test]
fn routes_are_ip_route() {
    let v4 = RouteSpec::device(ip("10.9.0.0"), 16, 3);
    let v6 = RouteSpec::device(ip("2001:db8:9::"), 48, 3);
    let req = |add, s: &RouteSpec| ours(route::route_request(add, s).unwrap());
    assert_eq!(req(true, &v4), ip_msg(IP_ROUTE4));
    assert_eq!(req(true, &v6), ip_msg(IP_ROUTE6));
    assert_eq!(req(false, &v4), ip_msg(IP_DELROUTE4));
    assert_eq!(req(false, &v6), ip_msg(IP_DELROUTE6));
    assert_eq!(
        ours(route::dump_request(Some(IpFamily::V4), Some(254))),
        ip_msg(IP_GETROUTE)
    );

    // Through a gateway: scope universe, RTA_GATEWAY and RTA_PRIORITY before RTA_OIF.
    let gw = RouteSpec {
        gateway: Some(ip("10.9.0.1")),
        metric: Some(100),
        ..RouteSpec::device(ip("0.0.0.0"), 0, 3)
    };
    let r = ours(route::route_request(true, &gw).unwrap());
    let m = messages(&r).next().unwrap().unwrap();
    let hdr = msg::RtMsg::decode(m.payload).unwrap();
    assert_eq!(
        (hdr.scope, hdr.dst_len, hdr.table),
        (RT_SCOPE_UNIVERSE, 0, RT_TABLE_MAIN)
    );
    let types: Vec<u16> = msg::attrs(&m.payload[12..]).map(|a| a.0).collect();
    assert_eq!(types, [RTA_GATEWAY, RTA_PRIORITY, RTA_OIF]); // no RTA_DST for a default route
    let mixed = RouteSpec {
        gateway: Some(ip("fe80::1")),
        ..v4.clone()
    };
    assert_eq!(
        route::route_request(true, &mixed).unwrap_err().code(),
        "ERR_INVALID_ARG_VALUE"
    );
    let long = RouteSpec {
        prefix_len: 33,
        ..v4
    };
    assert_eq!(
        route::route_request(true, &long).unwrap_err().code(),
        "ERR_OUT_OF_RANGE"
    );
}

#[test]
fn link_dump_request_filters_in_the_kernel() {
    let f = LinkFilter {
        kind: Some("tun".into()),
        master: Some(4),
    };
    let mut want = ip_msg((RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &[0; 16]));
    want.extend([8, 0, 10, 0, 4, 0, 0, 0]); // IFLA_MASTER = 4
    want.extend([12, 0, 18, 0, 7, 0, 1, 0, b't', b'u', b'n', 0]); // IFLA_LINKINFO { KIND "tun" }, padding included
    let len = want.len() as u32;
    want[..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(ours(link::dump_request(&f)), want);
    // No filter: the bare ifinfomsg. Some(0) (no master) is filtered here only.
    let plain = LinkFilter {
        master: Some(0),
        ..Default::default()
    };
    assert_eq!(
        ours(link::dump_request(&plain)),
        ip_msg((RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &[0; 16]))
    );
    let mut by_name = ip_msg((RTM_GETLINK, NLM_F_REQUEST, &[0; 16]));
    by_name.extend([7, 0, 3, 0, b't', b'1', 0, 0]);
    let len = by_name.len() as u32;
    by_name[..4].copy_from_slice(&len.to_ne_bytes());
    assert_eq!(ours(link::get_request(LinkRef::Name("t1"))), by_name);
}

// ------------------------------------------------------- recorded replies

fn all(data: &[u8]) -> Vec<Msg<'_>> {
    messages(data).map(|m| m.unwrap()).collect()
}

fn recorded_links() -> Vec<Link> {
    let msgs = all(LINKS);
    assert_eq!(msgs.last().unwrap().msg_type, NLMSG_DONE);
    msgs.iter().filter_map(parse_link).collect()
}

#[test]
fn recorded_link_dump() {
    let links = recorded_links();
    let names: Vec<_> = links
        .iter()
        .map(|l| (l.ifindex, l.ifname.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            (1, "lo"),
            (2, "vb1"),
            (3, "vb0"),
            (4, "br0"),
            (5, "mv0"),
            (6, "t0"),
            (7, "t1"),
            (8, "t2")
        ]
    );
    let by = |n: &str| links.iter().find(|l| l.ifname == n).unwrap().clone();

    let lo = by("lo");
    assert_eq!(lo.flags, IFF_UP | IFF_LOOPBACK | IFF_RUNNING | IFF_LOWER_UP);
    assert_eq!(
        (lo.mtu, lo.link_type, lo.kind.as_deref()),
        (Some(65536), 772, None)
    );
    assert_eq!(lo.operstate.map(link::oper_state_name), Some("UNKNOWN"));

    let vb0 = by("vb0");
    assert_eq!(vb0.kind.as_deref(), Some("veth"));
    assert_eq!(vb0.link, Some(2)); // the peer
    assert_eq!(vb0.carrier, Some(true));
    assert_eq!(vb0.operstate.map(link::oper_state_name), Some("UP"));
    assert_eq!(vb0.mac, Some([0xba, 0x50, 0x41, 0xd3, 0x72, 0xca]));
    assert_eq!((vb0.num_tx_queues, vb0.num_rx_queues), (Some(2), Some(2)));

    let br0 = by("br0");
    assert_eq!(br0.kind.as_deref(), Some("bridge"));
    assert!(br0.is_up() && br0.flags & IFF_LOWER_UP == 0);
    assert_eq!(br0.carrier, Some(false));
    assert_eq!(br0.mtu, Some(9000));

    let mv0 = by("mv0");
    assert_eq!(mv0.kind.as_deref(), Some("macvtap"));
    assert_eq!(mv0.macvlan_mode, Some(MacvlanMode::Bridge as u32));
    assert_eq!((mv0.link, mv0.txqlen), (Some(3), Some(500)));
    assert_eq!(mv0.mac, Some([0xae, 0x58, 0x7a, 0x75, 0xad, 0xc8]));
    assert!(!mv0.is_up());

    let t0 = by("t0");
    assert_eq!(t0.kind.as_deref(), Some("tun"));
    assert_eq!(
        t0.tun,
        Some(TunInfo {
            tap: true,
            owner: None,
            group: None,
            pi: false,
            vnet_hdr: false,
            persist: true,
            multi_queue: false,
            num_queues: None,
            num_disabled_queues: None,
        })
    );
    assert_eq!(t0.alias.as_deref(), Some("hello vm"));
    assert_eq!(
        (t0.mtu, t0.min_mtu, t0.max_mtu),
        (Some(9000), Some(68), Some(65521))
    );
    assert_eq!((t0.master, t0.txqlen), (Some(4), Some(2000)));
    assert_eq!(t0.mac, Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    assert_eq!(t0.link, None);
    assert_eq!(t0.slave_kind.as_deref(), Some("bridge"));
    assert_eq!(
        t0.bridge_port,
        Some(BridgePort {
            state: Some(0),
            priority: Some(32),
            cost: Some(2),
            hairpin: Some(true),
            learning: Some(false),
            unicast_flood: Some(true),
            mcast_flood: Some(true),
            bcast_flood: Some(true),
            isolated: Some(true),
        })
    );
    let s = t0.stats.unwrap();
    assert_eq!((s.rx_packets, s.rx_errors), (0, 0));

    let t1 = by("t1");
    assert_eq!(
        t1.tun,
        Some(TunInfo {
            tap: true,
            owner: Some(4242),
            group: Some(4243),
            pi: false,
            vnet_hdr: true,
            persist: true,
            multi_queue: true,
            num_queues: Some(0),
            num_disabled_queues: Some(0),
        })
    );
    assert_eq!(
        (t1.num_tx_queues, t1.master, t1.alias.clone()),
        (Some(256), None, None)
    );

    let t2 = by("t2");
    let tun = t2.tun.unwrap();
    assert!(tun.tap && !tun.persist && !tun.multi_queue && !tun.vnet_hdr && !tun.pi);
    assert_eq!(tun.owner, None);
    assert!(links.iter().all(|l| l.stats.is_some()));
}

#[test]
fn recorded_bridge_dump() {
    let ports: Vec<_> = all(BRIDGE).iter().filter_map(parse_bridge_port).collect();
    assert_eq!(ports.len(), 1);
    let p = &ports[0];
    assert_eq!((p.ifindex, p.ifname.as_str(), p.master), (6, "t0", Some(4)));
    assert_eq!(p.port.hairpin, Some(true));
    assert_eq!(p.port.learning, Some(false));
    assert_eq!(p.port.isolated, Some(true));
    assert_eq!(p.port.unicast_flood, Some(true));
    // The same settings as IFLA_INFO_SLAVE_DATA in the AF_UNSPEC dump.
    let t0 = recorded_links()
        .into_iter()
        .find(|l| l.ifindex == 6)
        .unwrap();
    let slave = t0.bridge_port.unwrap();
    assert_eq!(
        (slave.hairpin, slave.learning, slave.isolated, slave.state),
        (
            p.port.hairpin,
            p.port.learning,
            p.port.isolated,
            p.port.state
        )
    );
}

#[test]
fn recorded_address_dump() {
    let addrs: Vec<_> = all(ADDRS).iter().filter_map(parse_address).collect();
    let got: Vec<_> = addrs
        .iter()
        .map(|a| {
            (
                a.ifindex,
                a.ip().unwrap().to_string(),
                a.prefix_len,
                a.scope,
            )
        })
        .collect();
    let want = [
        (1, "127.0.0.1", 8, RT_SCOPE_HOST),
        (4, "10.1.2.3", 24, RT_SCOPE_UNIVERSE),
        (1, "::1", 128, RT_SCOPE_HOST),
        (4, "2001:db8::5", 64, RT_SCOPE_UNIVERSE),
        (2, "fe80::685a:8fff:fe79:6675", 64, RT_SCOPE_LINK),
        (3, "fe80::b850:41ff:fed3:72ca", 64, RT_SCOPE_LINK),
    ];
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want: Vec<_> = want
        .iter()
        .map(|&(i, a, p, s)| (i, a.to_owned(), p, s))
        .collect();
    want.sort();
    assert_eq!(got_sorted, want);
    let v4 = addrs
        .iter()
        .find(|a| a.ifindex == 4 && a.family == IpFamily::V4)
        .unwrap();
    assert_eq!(v4.label.as_deref(), Some("br0"));
    assert_eq!(
        (v4.local, v4.address),
        (Some(ip("10.1.2.3")), Some(ip("10.1.2.3")))
    );
    let v6 = addrs
        .iter()
        .find(|a| a.ifindex == 4 && a.family == IpFamily::V6)
        .unwrap();
    assert_eq!((v6.local, v6.label.as_deref()), (None, None));
    const IFA_F_NODAD: u32 = 0x02;
    const IFA_F_PERMANENT: u32 = 0x80;
    assert_eq!(
        v6.flags & (IFA_F_NODAD | IFA_F_PERMANENT),
        IFA_F_NODAD | IFA_F_PERMANENT
    );
}

#[test]
fn recorded_route_dump() {
    let routes: Vec<_> = all(ROUTES).iter().filter_map(parse_route).collect();
    let main: Vec<_> = routes
        .iter()
        .filter(|r| r.table == u32::from(RT_TABLE_MAIN))
        .map(|r| (format!("{}/{}", r.dst.unwrap(), r.dst_len), r.oif.unwrap()))
        .collect();
    assert_eq!(
        main,
        [
            ("10.1.2.0/24".to_owned(), 4),
            ("10.9.0.0/16".to_owned(), 3),
            ("2001:db8::/64".to_owned(), 4),
            ("2001:db8:9::/48".to_owned(), 3),
            ("fe80::/64".to_owned(), 2),
            ("fe80::/64".to_owned(), 3),
        ]
    );
    let kernel = &routes[0];
    assert_eq!(
        (
            kernel.protocol,
            kernel.scope,
            kernel.route_type,
            kernel.prefsrc
        ),
        (
            RTPROT_KERNEL,
            RT_SCOPE_LINK,
            RTN_UNICAST,
            Some(ip("10.1.2.3"))
        )
    );
    const RTNH_F_LINKDOWN: u32 = 16;
    assert_eq!(kernel.flags & RTNH_F_LINKDOWN, RTNH_F_LINKDOWN);
    let ours = routes
        .iter()
        .find(|r| r.dst == Some(ip("10.9.0.0")))
        .unwrap();
    assert_eq!(
        (ours.protocol, ours.scope, ours.gateway),
        (RTPROT_BOOT, RT_SCOPE_LINK, None)
    );
    let v6 = routes
        .iter()
        .find(|r| r.dst == Some(ip("2001:db8:9::")))
        .unwrap();
    assert_eq!((v6.priority, v6.family), (Some(1024), IpFamily::V6));
    let local = routes
        .iter()
        .filter(|r| r.table == u32::from(RT_TABLE_LOCAL))
        .count();
    assert_eq!(local, routes.len() - main.len());
}

#[test]
fn recorded_errors_and_acks() {
    let one = |d| Ack::from_error(&all(d)[0]).unwrap();
    let ext = one(ERR_EXTACK);
    assert_eq!(ext.error, -libc::EINVAL);
    assert_eq!(
        ext.message.as_deref(),
        Some("mtu greater than device maximum")
    );
    let plain = one(ERR_PLAIN);
    assert_eq!((plain.error, plain.message), (-libc::EINVAL, None));
    assert_eq!(one(ERR_CAPPED), ext);
    assert_eq!(one(ERR_NODEV).error, -libc::ENODEV);
    assert_eq!(one(ACK).error, 0);
    assert_eq!(one(DELLINK_ACK).error, 0);
    // Strict checking refuses a link dump by index, in NLMSG_DONE.
    let done = &all(ERR_STRICT_DUMP)[0];
    assert_eq!(done.msg_type, NLMSG_DONE);
    let ack = Ack::from_done(done);
    assert_eq!(ack.error, -libc::EINVAL);
    assert_eq!(
        ack.message.as_deref(),
        Some("Filter by device index not supported for link dumps")
    );
    let t1 = parse_link(&all(GETLINK_T1)[0]).unwrap();
    assert_eq!((t1.ifname.as_str(), t1.ifindex), ("t1", 7));
}

// ------------------------------------------------------- a scripted kernel

#[derive(Clone)]
enum Step {
    /// A datagram; its sequence numbers become the last request's.
    Reply(Vec<u8>),
    /// A datagram delivered as it is (a late reply to something else).
    Stale(Vec<u8>),
    Fail(Errno),
}

#[derive(Default)]
struct Script {
    steps: Mutex<VecDeque<Step>>,
    sent: Mutex<Vec<Vec<u8>>>,
    sockets: AtomicUsize,
    fail_socket: bool,
}

impl Script {
    fn new(steps: Vec<Step>) -> Self {
        Script {
            steps: Mutex::new(steps.into()),
            ..Default::default()
        }
    }

    fn sent(&self) -> Vec<Vec<u8>> {
        self.sent.lock().unwrap().clone()
    }

    fn sockets(&self) -> usize {
        self.sockets.load(Ordering::SeqCst)
    }
}

fn set_seq(datagram: &mut [u8], seq: u32) {
    let mut off = 0;
    while off + 16 <= datagram.len() {
        let len = msg::read_u32(&datagram[off..]).unwrap() as usize;
        datagram[off + 8..off + 12].copy_from_slice(&seq.to_ne_bytes());
        if len < 16 {
            break;
        }
        off += align(len);
    }
}

fn set_flag(datagram: &[u8], flag: u16) -> Vec<u8> {
    let mut d = datagram.to_vec();
    let mut off = 0;
    while off + 16 <= d.len() {
        let len = msg::read_u32(&d[off..]).unwrap() as usize;
        let f = msg::read_u16(&d[off + 6..]).unwrap() | flag;
        d[off + 6..off + 8].copy_from_slice(&f.to_ne_bytes());
        off += align(len);
    }
    d
}

impl Sys for Script {
    fn open(&self, _: &std::ffi::CStr, _: libc::c_int) -> Result<OwnedFd, Errno> {
        unreachable!()
    }
    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        unreachable!()
    }
    fn ioctl(&self, _: BorrowedFd<'_>, _: &mut Ioctl<'_>) -> Result<(), Errno> {
        unreachable!()
    }
    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        if self.fail_socket {
            return Err(Errno::EMFILE);
        }
        self.sockets.fetch_add(1, Ordering::SeqCst);
        Ok(std::fs::File::open("/dev/null").unwrap().into())
    }
    fn netlink_send(&self, _: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        self.sent.lock().unwrap().push(msg.to_vec());
        Ok(())
    }
    fn netlink_recv(&self, _: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        // A script that ran out answers like a kernel that never replies.
        let Some(step) = self.steps.lock().unwrap().pop_front() else {
            return Err(Errno::ETIME);
        };
        let data = match step {
            Step::Fail(e) => return Err(e),
            Step::Stale(d) => d,
            Step::Reply(mut d) => {
                let last = self.sent.lock().unwrap().last().unwrap().clone();
                set_seq(&mut d, msg::read_u32(&last[8..]).unwrap());
                d
            }
        };
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(data.len())
    }
}

fn os(e: &Error) -> &crate::error::OsError {
    match e {
        Error::Os(os) => os,
        other => panic!("{other:?}"),
    }
}

#[test]
fn dump_through_the_socket() {
    let sys = Script::new(vec![Step::Reply(LINKS.to_vec())]);
    let mut nl = Netlink::open(&sys).unwrap();
    let links = nl.links(&LinkFilter::default()).unwrap();
    assert_eq!(links, recorded_links());
    assert_eq!(
        sys.sent(),
        vec![ours(link::dump_request(&LinkFilter::default()))]
    );

    // Filters hold even when the kernel ignored them (here: it sent everything).
    let sys = Script::new(vec![
        Step::Reply(LINKS.to_vec()),
        Step::Reply(LINKS.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    let tun = LinkFilter {
        kind: Some("tun".into()),
        ..Default::default()
    };
    let names: Vec<_> = nl
        .links(&tun)
        .unwrap()
        .into_iter()
        .map(|l| l.ifname)
        .collect();
    assert_eq!(names, ["t0", "t1", "t2"]);
    let unbridged = LinkFilter {
        master: Some(0),
        ..Default::default()
    };
    assert_eq!(nl.links(&unbridged).unwrap().len(), 7);
    // Each request has the next sequence number.
    let seqs: Vec<_> = sys
        .sent()
        .iter()
        .map(|m| msg::read_u32(&m[8..]).unwrap())
        .collect();
    assert_eq!(seqs, [1, 2]);
}

#[test]
fn addresses_routes_and_ports_through_the_socket() {
    let sys = Script::new(vec![
        Step::Reply(ADDRS.to_vec()),
        Step::Reply(ROUTES.to_vec()),
        Step::Reply(BRIDGE.to_vec()),
        Step::Reply(ROUTES.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    let a = nl.addresses(Some(IpFamily::V6), Some(4)).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].ip(), Some(ip("2001:db8::5")));
    let r = nl.routes(None, Some(u32::from(RT_TABLE_MAIN))).unwrap();
    assert_eq!(r.len(), 6);
    let p = nl.bridge_ports().unwrap();
    assert_eq!(p[0].ifname, "t0");
    assert_eq!(nl.routes(Some(IpFamily::V4), None).unwrap().len(), 7);
}

#[test]
fn kernel_errors_carry_their_text() {
    let sys = Script::new(vec![Step::Reply(ERR_EXTACK.to_vec())]);
    let mut nl = Netlink::open(&sys).unwrap();
    let change = LinkChange {
        mtu: Some(70000),
        ..Default::default()
    };
    let e = nl.set_link(6, &change).unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    assert_eq!(os(&e).syscall, "netlink(RTM_NEWLINK)");
    assert_eq!(
        e.to_string(),
        "EINVAL: invalid argument, netlink(RTM_NEWLINK): mtu greater than device maximum"
    );
    let e = e.with_ifname("t0");
    assert_eq!(
        e.to_string(),
        "EINVAL: invalid argument, netlink(RTM_NEWLINK) 't0': mtu greater than device maximum"
    );

    // Without extended acks: no text; ENODEV gets ours.
    let sys = Script::new(vec![
        Step::Reply(ERR_PLAIN.to_vec()),
        Step::Reply(ERR_NODEV.to_vec()),
        Step::Reply(ERR_NODEV.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl.set_link(6, &change).unwrap_err();
    assert_eq!((e.code(), os(&e).hint.clone()), ("EINVAL", None));
    let e = nl.delete_link(9999).unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    assert_eq!(
        os(&e).hint.as_deref(),
        Some("there is no interface with index 9999 in this network namespace")
    );
    // A get of a link that is not there is None, not an error.
    assert_eq!(nl.link(LinkRef::Index(9999)).unwrap(), None);

    let sys = Script::new(vec![Step::Reply(ERR_STRICT_DUMP.to_vec())]);
    let mut nl = Netlink::open(&sys).unwrap();
    let mut bad = Request::new(RTM_GETLINK, NLM_F_DUMP);
    bad.push(
        &msg::IfInfoMsg {
            index: 1,
            ..Default::default()
        }
        .encode(),
    );
    let e = nl.dump(&mut bad, parse_link).unwrap_err();
    assert_eq!(os(&e).syscall, "netlink(RTM_GETLINK)");
    assert_eq!(
        os(&e).hint.as_deref(),
        Some("Filter by device index not supported for link dumps")
    );

    let sys = Script::new(vec![Step::Reply(ERR_EXTACK.to_vec())]);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl
        .create_macvtap(&MacvtapSpec {
            name: Some("mv9".into()),
            lower: 3,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(os(&e).ifname.as_deref(), Some("mv9"));
}

#[test]
fn gets_creates_and_acks_through_the_socket() {
    let sys = Script::new(vec![
        Step::Reply(GETLINK_T1.to_vec()),
        Step::Reply(NEWLINK_ECHO.to_vec()),
        Step::Reply(DELLINK_ACK.to_vec()),
        Step::Reply(ACK.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    let t1 = nl.link(LinkRef::Name("t1")).unwrap().unwrap();
    assert_eq!(t1.ifindex, 7);
    let spec = MacvtapSpec {
        name: Some("mv9".into()),
        lower: 3,
        ..Default::default()
    };
    let mv9 = nl.create_macvtap(&spec).unwrap();
    assert_eq!(
        (mv9.ifname.as_str(), mv9.kind.as_deref()),
        ("mv9", Some("macvtap"))
    );
    assert_eq!((mv9.link, mv9.macvlan_mode), (Some(3), Some(4)));
    nl.delete_link(mv9.ifindex).unwrap();
    let alias = LinkChange {
        alias: Some("hello vm".into()),
        ..Default::default()
    };
    nl.set_link(6, &alias).unwrap();
    // Nothing to change: nothing sent.
    nl.set_link(6, &LinkChange::default()).unwrap();
    nl.set_bridge_port(6, &BridgePort::default()).unwrap();
    assert_eq!(sys.sent().len(), 4);
    assert!(sys.steps.lock().unwrap().is_empty());
}

#[test]
fn late_replies_are_skipped() {
    let mut stale = ACK.to_vec();
    set_seq(&mut stale, 77);
    let mut stale_error = ERR_EXTACK.to_vec();
    set_seq(&mut stale_error, 78);
    let sys = Script::new(vec![
        Step::Stale(stale),
        Step::Stale(stale_error),
        Step::Reply(ACK.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    nl.set_link(
        6,
        &LinkChange {
            up: Some(true),
            ..Default::default()
        },
    )
    .unwrap();
}

#[test]
fn interrupted_dumps_start_over_a_bounded_number_of_times() {
    let intr = set_flag(LINKS, NLM_F_DUMP_INTR);
    let sys = Script::new(vec![Step::Reply(intr.clone()), Step::Reply(LINKS.to_vec())]);
    let mut nl = Netlink::open(&sys).unwrap();
    assert_eq!(nl.links(&LinkFilter::default()).unwrap().len(), 8);
    assert_eq!((sys.sent().len(), sys.sockets()), (2, 1));

    let steps = (0..socket::MAX_ATTEMPTS)
        .map(|_| Step::Reply(intr.clone()))
        .collect();
    let sys = Script::new(steps);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl.links(&LinkFilter::default()).unwrap_err();
    assert_eq!(e.code(), "EAGAIN");
    assert_eq!(sys.sent().len(), socket::MAX_ATTEMPTS as usize);
}

#[test]
fn overflows_start_over_on_a_new_socket_but_changes_do_not() {
    let sys = Script::new(vec![
        Step::Fail(Errno::ENOBUFS),
        Step::Reply(LINKS.to_vec()),
    ]);
    let mut nl = Netlink::open(&sys).unwrap();
    assert_eq!(nl.links(&LinkFilter::default()).unwrap().len(), 8);
    assert_eq!((sys.sent().len(), sys.sockets()), (2, 2));

    let sys = Script::new(vec![Step::Fail(Errno::ENOBUFS)]);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl.delete_link(5).unwrap_err();
    assert_eq!(
        (e.code(), os(&e).syscall),
        ("ENOBUFS", "netlink(RTM_DELLINK)")
    );
    assert_eq!(sys.sent().len(), 1);

    let steps = (0..socket::MAX_ATTEMPTS)
        .map(|_| Step::Fail(Errno::ENOBUFS))
        .collect();
    let sys = Script::new(steps);
    let mut nl = Netlink::open(&sys).unwrap();
    assert_eq!(nl.bridge_ports().unwrap_err().code(), "ENOBUFS");
}

#[test]
fn a_datagram_bigger_than_the_buffer_is_read_again_with_a_bigger_one() {
    // 100 copies of t1's link message, then DONE: more than RECV_BUF.
    let t1 = all(LINKS)[6];
    let start = all(LINKS)[..6]
        .iter()
        .map(|m| align(16 + m.payload.len()))
        .sum::<usize>();
    let t1_bytes = &LINKS[start..start + align(16 + t1.payload.len())];
    let mut big = Vec::new();
    while big.len() <= socket::RECV_BUF {
        big.extend_from_slice(t1_bytes);
    }
    big.extend_from_slice(&LINKS[LINKS.len() - 20..]); // NLMSG_DONE
    let copies = (big.len() - 20) / t1_bytes.len();
    let sys = Script::new(vec![Step::Reply(big.clone()), Step::Reply(big)]);
    let mut nl = Netlink::open(&sys).unwrap();
    let links = nl.links(&LinkFilter::default()).unwrap();
    assert_eq!(links.len(), copies);
    assert!(links.iter().all(|l| l.ifname == "t1"));
    assert_eq!((sys.sent().len(), sys.sockets()), (2, 2));
}

#[test]
fn socket_send_and_receive_failures_name_the_request() {
    let sys = Script {
        fail_socket: true,
        ..Default::default()
    };
    let e = Netlink::open(&sys).unwrap_err();
    assert_eq!((e.code(), os(&e).syscall), ("EMFILE", "socket"));

    let sys = Script::new(vec![Step::Fail(Errno::EIO)]);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl.add_address(6, ip("10.1.2.3"), 24).unwrap_err();
    assert_eq!((e.code(), os(&e).syscall), ("EIO", "netlink(RTM_NEWADDR)"));

    let sys = Script::new(vec![Step::Reply(vec![
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17,
    ])]);
    let mut nl = Netlink::open(&sys).unwrap();
    let e = nl.routes(None, None).unwrap_err();
    assert_eq!(
        (e.code(), os(&e).syscall),
        ("EBADMSG", "netlink(RTM_GETROUTE)")
    );
}

// ----------------------------------------------------------- random bytes

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Every reader on `data`, as every message type.
fn read_everything(data: &[u8]) {
    for m in messages(data).flatten() {
        for ty in [
            RTM_NEWLINK,
            RTM_NEWADDR,
            RTM_NEWROUTE,
            NLMSG_ERROR,
            NLMSG_DONE,
        ] {
            for flags in [0, NLM_F_ACK_TLVS, NLM_F_ACK_TLVS | NLM_F_CAPPED] {
                let m = Msg {
                    msg_type: ty,
                    flags,
                    ..m
                };
                let _ = parse_link(&m);
                let _ = parse_bridge_port(&m);
                let _ = parse_address(&m);
                let _ = parse_route(&m);
                let _ = Ack::from_error(&m);
                let _ = Ack::from_done(&m);
            }
        }
    }
}

#[test]
fn random_and_mangled_bytes_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let recorded = [
        LINKS,
        BRIDGE,
        ADDRS,
        ROUTES,
        GETLINK_T1,
        ERR_EXTACK,
        ERR_PLAIN,
        ERR_STRICT_DUMP,
        NEWLINK_ECHO,
    ];
    for round in 0..3000 {
        // Pure noise, sometimes with a plausible header in front.
        let len = rng.below(300);
        let mut noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        if round % 2 == 0 && len >= 16 {
            noise[..4].copy_from_slice(&(len as u32).to_ne_bytes());
        }
        read_everything(&noise);
        // A recording with a few bytes changed and its tail cut off somewhere.
        let mut d = recorded[round % recorded.len()].to_vec();
        for _ in 0..1 + rng.below(8) {
            let i = rng.below(d.len());
            d[i] = rng.next() as u8;
        }
        d.truncate(rng.below(d.len() + 1));
        read_everything(&d);
        // And through the socket: an error or a result, never a panic or a hang.
        if round % 10 == 0 {
            let sys = Script::new(vec![Step::Reply(d.clone()); 8]);
            if let Ok(mut nl) = Netlink::open(&sys) {
                let _ = nl.links(&LinkFilter::default());
            }
        }
    }
}
