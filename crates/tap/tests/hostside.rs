//! The host side of a NIC against the kernel, each test in network
//! namespaces of its own, compared with `ip -j` and `/proc/sys/net` as seen
//! from inside the namespace (`ip netns exec`): routed mode (addresses,
//! routes, proxy ARP/NDP, forwarding), bridge ports (the bridge's MTU, port
//! flags, the queue length), the carrier, and an existing device configured
//! again. Needs root (ignored otherwise; scripts/test-rust.mjs includes them
//! as root).

mod support;

use vmtap_core::netns::NetNsSpec;
use vmtap_core::{
    open_tap, parse_address, parse_route, BridgePortFlags, Error, IpCidr, OpenOptions, RealSys, Tap,
};

use support::{Json, Netns};

fn addr(s: &str) -> IpCidr {
    parse_address("address", s).unwrap()
}

fn route(s: &str) -> IpCidr {
    parse_route("route", s).unwrap()
}

fn in_ns(ns: &Netns) -> Option<NetNsSpec> {
    Some(NetNsSpec::Path(ns.name.clone()))
}

/// A sysctl of `ifname` as the namespace sees it.
fn sysctl(ns: &Netns, family: &str, ifname: &str, key: &str) -> String {
    let path = format!("/proc/sys/net/{family}/conf/{ifname}/{key}");
    ns.exec("cat", &[&path]).trim().to_owned()
}

/// `(local, prefixlen)` of every address of `dev` in one family (`-4`/`-6`),
/// global scope only (no link-local).
fn addresses(ns: &Netns, family: &str, dev: &str) -> Vec<(String, u64)> {
    let j = ns.ip_json(&[family, "addr", "show", "dev", dev, "scope", "global"]);
    let mut v: Vec<(String, u64)> = j
        .arr()
        .iter()
        .flat_map(|l| l.get("addr_info").map(Json::arr).unwrap_or(&[]).to_vec())
        .filter_map(|a| Some((a.str("local")?.to_owned(), a.num("prefixlen")?)))
        .collect();
    v.sort();
    v
}

/// `(dst, scope, protocol)` of the main-table routes through `dev` that
/// the kernel did not add itself.
fn routes(ns: &Netns, family: &str, dev: &str) -> Vec<(String, String, String)> {
    let j = ns.ip_json(&[family, "route", "show", "dev", dev]);
    let mut v: Vec<(String, String, String)> = j
        .arr()
        .iter()
        .filter(|r| r.str("protocol") != Some("kernel"))
        .map(|r| {
            (
                r.str("dst").unwrap().to_owned(),
                r.str("scope").unwrap_or("universe").to_owned(),
                // `ip -j` leaves out the protocol `ip route add` sets (boot).
                r.str("protocol").unwrap_or("boot").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn thread_netns() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

fn code(r: Result<(), Error>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(e) => e.code().to_owned(),
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn routed_mode_at_open_in_a_namespace() {
    let ns = Netns::new("routed");
    let home = thread_netns();
    let opts = OpenOptions {
        name: "rt0".into(),
        netns: in_ns(&ns),
        up: true,
        addresses: vec![addr("192.0.2.1/32"), addr("2001:db8:1::1/64")],
        routes: vec![route("192.0.2.2/32"), route("2001:db8:2::/64")],
        proxy_arp: Some(true),
        proxy_ndp: Some(true),
        forwarding: Some(true),
        tx_queue_len: Some(500),
        ..OpenOptions::default()
    };
    let tap = open_tap(&RealSys, &opts).unwrap();
    assert_eq!(thread_netns(), home, "the calling thread stayed home");
    assert_eq!(
        addresses(&ns, "-4", "rt0"),
        vec![("192.0.2.1".to_owned(), 32)]
    );
    assert_eq!(
        addresses(&ns, "-6", "rt0"),
        vec![("2001:db8:1::1".to_owned(), 64)]
    );
    assert_eq!(
        routes(&ns, "-4", "rt0"),
        vec![("192.0.2.2".into(), "link".into(), "boot".into())]
    );
    assert!(routes(&ns, "-6", "rt0").contains(&(
        "2001:db8:2::/64".into(),
        "universe".into(),
        "boot".into()
    )));
    for (family, key) in [
        ("ipv4", "proxy_arp"),
        ("ipv4", "forwarding"),
        ("ipv6", "proxy_ndp"),
        ("ipv6", "forwarding"),
    ] {
        assert_eq!(sysctl(&ns, family, "rt0", key), "1", "{family} {key}");
    }
    // The namespace's other interfaces, and its defaults, are untouched.
    assert_eq!(sysctl(&ns, "ipv4", "lo", "forwarding"), "0");
    assert_eq!(sysctl(&ns, "ipv4", "default", "proxy_arp"), "0");
    let info = tap.get_link_info(&RealSys).unwrap();
    assert_eq!(info.tx_queue_len, 500);
    assert!(info.carrier, "a queue is attached: carrier on");
    let j = ns.ip_json(&["-d", "link", "show", "dev", "rt0"]);
    assert_eq!(j.arr()[0].num("txqlen"), Some(500));
    tap.close().unwrap();
    assert!(ns.ip(&["-o", "link", "show"]).find("rt0").is_none());
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn sysctls_are_those_of_the_devices_namespace() {
    // The same name in two namespaces: each setting lands in its own.
    let (a, b) = (Netns::new("sysa"), Netns::new("sysb"));
    let open = |ns: &Netns| {
        let opts = OpenOptions {
            name: "sx0".into(),
            netns: in_ns(ns),
            ..OpenOptions::default()
        };
        open_tap(&RealSys, &opts).unwrap()
    };
    let (ta, tb) = (open(&a), open(&b));
    ta.set_proxy_arp(&RealSys, true).unwrap();
    tb.set_forwarding(&RealSys, true).unwrap();
    assert_eq!(sysctl(&a, "ipv4", "sx0", "proxy_arp"), "1");
    assert_eq!(sysctl(&b, "ipv4", "sx0", "proxy_arp"), "0");
    assert_eq!(sysctl(&a, "ipv4", "sx0", "forwarding"), "0");
    assert_eq!(sysctl(&b, "ipv4", "sx0", "forwarding"), "1");
    assert_eq!(sysctl(&b, "ipv6", "sx0", "forwarding"), "1");
    tb.set_proxy_ndp(&RealSys, true).unwrap();
    assert_eq!(sysctl(&a, "ipv6", "sx0", "proxy_ndp"), "0");
    assert_eq!(sysctl(&b, "ipv6", "sx0", "proxy_ndp"), "1");
    ta.set_proxy_arp(&RealSys, false).unwrap();
    tb.set_forwarding(&RealSys, false).unwrap();
    assert_eq!(sysctl(&a, "ipv4", "sx0", "proxy_arp"), "0");
    assert_eq!(sysctl(&b, "ipv4", "sx0", "forwarding"), "0");
    assert_eq!(sysctl(&b, "ipv6", "sx0", "forwarding"), "0");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn methods_add_and_remove_what_ip_then_shows() {
    let ns = Netns::new("methods");
    let opts = OpenOptions {
        name: "mt0".into(),
        netns: in_ns(&ns),
        ..OpenOptions::default()
    };
    let tap = open_tap(&RealSys, &opts).unwrap();
    // Down: a route is refused, with the way out in the message.
    let e = tap
        .add_route(&RealSys, &route("198.51.100.0/24"))
        .unwrap_err();
    assert_eq!(e.code(), "ENETDOWN", "{e}");
    assert!(e.to_string().contains("bring the link up first"), "{e}");
    tap.set_link_up(&RealSys, true).unwrap();
    tap.add_address(&RealSys, &addr("10.20.0.1/24")).unwrap();
    tap.add_address(&RealSys, &addr("2001:db8:9::1/64"))
        .unwrap();
    tap.add_route(&RealSys, &route("198.51.100.0/24")).unwrap();
    tap.add_route(&RealSys, &route("2001:db8:7::/48")).unwrap();
    assert_eq!(
        addresses(&ns, "-4", "mt0"),
        vec![("10.20.0.1".to_owned(), 24)]
    );
    assert_eq!(
        addresses(&ns, "-6", "mt0"),
        vec![("2001:db8:9::1".to_owned(), 64)]
    );
    assert_eq!(
        routes(&ns, "-4", "mt0"),
        vec![("198.51.100.0/24".into(), "link".into(), "boot".into())]
    );
    assert!(routes(&ns, "-6", "mt0")
        .iter()
        .any(|r| r.0 == "2001:db8:7::/48"));
    let e = tap
        .add_address(&RealSys, &addr("10.20.0.1/24"))
        .unwrap_err();
    assert_eq!(e.code(), "EEXIST", "{e}");
    assert!(e.to_string().contains("already"), "{e}");
    assert_eq!(
        code(tap.add_route(&RealSys, &route("198.51.100.0/24"))),
        "EEXIST"
    );
    // Routes first: the kernel flushes a device's IPv4 routes with its
    // last IPv4 address.
    tap.remove_route(&RealSys, &route("198.51.100.0/24"))
        .unwrap();
    tap.remove_address(&RealSys, &addr("10.20.0.1/24")).unwrap();
    tap.remove_route(&RealSys, &route("2001:db8:7::/48"))
        .unwrap();
    tap.remove_address(&RealSys, &addr("2001:db8:9::1/64"))
        .unwrap();
    assert!(addresses(&ns, "-4", "mt0").is_empty());
    assert!(addresses(&ns, "-6", "mt0").is_empty());
    assert!(routes(&ns, "-4", "mt0").is_empty());
    assert_eq!(
        code(tap.remove_address(&RealSys, &addr("10.20.0.1/24"))),
        "EADDRNOTAVAIL"
    );
    assert_eq!(
        code(tap.remove_route(&RealSys, &route("198.51.100.0/24"))),
        "ESRCH"
    );

    // The queue length, and the carrier (TUNSETCARRIER), read back.
    tap.set_tx_queue_len(&RealSys, 64).unwrap();
    assert_eq!(tap.get_link_info(&RealSys).unwrap().tx_queue_len, 64);
    assert_eq!(
        ns.ip_json(&["link", "show", "dev", "mt0"]).arr()[0].num("txqlen"),
        Some(64)
    );
    let carrier = || {
        ns.exec("cat", &["/sys/class/net/mt0/carrier"])
            .trim()
            .to_owned()
    };
    assert!(tap.get_link_info(&RealSys).unwrap().carrier);
    assert_eq!(carrier(), "1");
    tap.set_carrier(&RealSys, false).unwrap();
    let info = tap.get_link_info(&RealSys).unwrap();
    assert!(!info.carrier);
    assert_eq!(info.flags & 1, 1, "still up");
    assert_eq!(carrier(), "0");
    let flags = ns.ip_json(&["link", "show", "dev", "mt0"]).arr()[0].strs("flags");
    assert!(flags.contains(&"NO-CARRIER".to_owned()), "{flags:?}");
    tap.set_carrier(&RealSys, true).unwrap();
    assert!(tap.get_link_info(&RealSys).unwrap().carrier);
    assert_eq!(carrier(), "1");

    // Not a bridge port.
    let e = tap
        .set_bridge_port(
            &RealSys,
            &BridgePortFlags {
                isolated: Some(true),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e.code(), "EINVAL" | "EOPNOTSUPP"), "{e}");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn a_device_without_ipv6_refuses_proxy_ndp_and_forwards_ipv4() {
    let ns = Netns::new("noipv6");
    // An MTU below 1280 takes IPv6 off the device (its conf directory goes).
    let opts = OpenOptions {
        name: "n6".into(),
        netns: in_ns(&ns),
        mtu: Some(1200),
        up: true,
        ..OpenOptions::default()
    };
    let tap = open_tap(&RealSys, &opts).unwrap();
    let e = tap.set_proxy_ndp(&RealSys, true).unwrap_err();
    assert_eq!(e.code(), "ENOENT", "{e}");
    assert!(e.to_string().contains("IPv6 is not available on n6"), "{e}");
    assert!(
        e.to_string()
            .contains("/proc/sys/net/ipv6/conf/n6/proxy_ndp"),
        "{e}"
    );
    tap.set_forwarding(&RealSys, true).unwrap();
    assert_eq!(sysctl(&ns, "ipv4", "n6", "forwarding"), "1");
    // At open: the same error, and nothing the call did is left. Another
    // name: n6 can outlive its fd's close() while a test thread's `ip`
    // child, forked before its exec, still holds that fd.
    drop(tap);
    let opts = OpenOptions {
        name: "m6".into(),
        proxy_arp: Some(true),
        proxy_ndp: Some(true),
        ..opts
    };
    let e = open_tap(&RealSys, &opts).unwrap_err();
    assert_eq!(e.code(), "ENOENT", "{e}");
    assert!(e.to_string().contains("IPv6 is not available on m6"), "{e}");
    let links = ns.ip_json(&["link", "show"]);
    assert!(
        links.arr().iter().all(|l| l.str("ifname") != Some("m6")),
        "m6 left behind"
    );
}

/// A bridge in `ns` whose MTU came from a 9000-byte port (so it would follow
/// a smaller new port down), or that was set to 9000 by hand.
fn bridge_9000(ns: &Netns, name: &str, auto: bool) {
    ns.ip(&["link", "add", name, "type", "bridge"]);
    if auto {
        let (a, b) = (format!("{name}a"), format!("{name}b"));
        ns.ip(&[
            "link", "add", &a, "mtu", "9000", "type", "veth", "peer", "name", &b, "mtu", "9000",
        ]);
        ns.ip(&["link", "set", &a, "master", name]);
    } else {
        ns.ip(&["link", "set", name, "mtu", "9000"]);
    }
    let j = ns.ip_json(&["link", "show", "dev", name]);
    assert_eq!(j.arr()[0].num("mtu"), Some(9000));
}

fn mtu(ns: &Netns, dev: &str) -> u64 {
    ns.ip_json(&["link", "show", "dev", dev]).arr()[0]
        .num("mtu")
        .unwrap()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn a_tap_takes_the_bridges_mtu_and_port_flags() {
    let ns = Netns::new("bridge");
    bridge_9000(&ns, "bra", true);
    bridge_9000(&ns, "brm", false);
    let open = |name: &str, br: &str, mtu: Option<u32>| {
        let opts = OpenOptions {
            name: name.into(),
            netns: in_ns(&ns),
            bridge: Some(br.into()),
            mtu,
            bridge_port: Some(BridgePortFlags {
                isolated: Some(true),
                learning: Some(false),
                unicast_flood: Some(false),
                hairpin: Some(true),
            }),
            tx_queue_len: Some(42),
            up: true,
            ..OpenOptions::default()
        };
        open_tap(&RealSys, &opts).unwrap()
    };
    let a = open("ta0", "bra", None);
    assert_eq!(mtu(&ns, "bra"), 9000, "the bridge kept its MTU");
    assert_eq!(mtu(&ns, "ta0"), 9000, "the tap took it");
    let m = open("tm0", "brm", None);
    assert_eq!(mtu(&ns, "brm"), 9000);
    assert_eq!(mtu(&ns, "tm0"), 9000, "a bridge's MTU set by hand too");
    let j = ns.ip_json(&["-d", "link", "show", "dev", "ta0"]);
    let l = &j.arr()[0];
    assert_eq!(l.str("master"), Some("bra"));
    assert_eq!(l.num("txqlen"), Some(42));
    let port = l
        .get("linkinfo")
        .and_then(|i| i.get("info_slave_data"))
        .unwrap();
    assert_eq!(port.bool("isolated"), Some(true));
    assert_eq!(port.bool("learning"), Some(false));
    assert_eq!(port.bool("flood"), Some(false));
    assert_eq!(port.bool("hairpin"), Some(true));
    // An explicit MTU wins, and then the bridge follows it down (the
    // kernel's rule for a bridge whose MTU came from its ports).
    let small = open("ts0", "bra", Some(1500));
    assert_eq!(mtu(&ns, "ts0"), 1500);
    assert_eq!(mtu(&ns, "bra"), 1500);
    drop(small);
    // The method, on a port.
    m.set_bridge_port(
        &RealSys,
        &BridgePortFlags {
            isolated: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    let j = ns.ip_json(&["-d", "link", "show", "dev", "tm0"]);
    let port = j.arr()[0]
        .get("linkinfo")
        .and_then(|i| i.get("info_slave_data"))
        .unwrap()
        .clone();
    assert_eq!(port.bool("isolated"), Some(false));
    assert_eq!(port.bool("hairpin"), Some(true), "the others stay");
    drop((a, m));
}

/// An existing persistent device opened again with the same options: what
/// it already has counts as done (its address, route, port, sysctls), and
/// what a failing later step finds changed is put back.
#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn an_existing_device_is_ensured_and_restored() {
    let ns = Netns::new("existing");
    ns.ip(&["link", "add", "bre", "type", "bridge"]);
    let opts = OpenOptions {
        name: "ex0".into(),
        netns: in_ns(&ns),
        persist: true,
        bridge: Some("bre".into()),
        up: true,
        addresses: vec![addr("192.0.2.1/32")],
        routes: vec![route("192.0.2.2/32")],
        proxy_arp: Some(true),
        forwarding: Some(true),
        ..OpenOptions::default()
    };
    open_tap(&RealSys, &opts).unwrap().close().unwrap();
    let again = open_tap(&RealSys, &opts).unwrap();
    assert_eq!(
        addresses(&ns, "-4", "ex0"),
        vec![("192.0.2.1".to_owned(), 32)]
    );
    assert_eq!(routes(&ns, "-4", "ex0").len(), 1);
    drop(again);
    // A route to the same destination through another device is an error,
    // and the rest of the call is undone: the new address goes again.
    ns.ip(&[
        "link", "add", "dum0", "type", "veth", "peer", "name", "dum1",
    ]);
    ns.ip(&["link", "set", "dum0", "up"]);
    ns.ip(&["route", "add", "198.51.100.9/32", "dev", "dum0"]);
    let clash = OpenOptions {
        addresses: vec![addr("192.0.2.1/32"), addr("192.0.2.77/32")],
        routes: vec![route("192.0.2.2/32"), route("198.51.100.9/32")],
        tx_queue_len: Some(7),
        ..opts.clone()
    };
    let e = open_tap(&RealSys, &clash).unwrap_err();
    assert_eq!(e.code(), "EEXIST", "{e}");
    assert!(
        e.to_string()
            .contains("already has a route to 198.51.100.9/32"),
        "{e}"
    );
    assert_eq!(
        addresses(&ns, "-4", "ex0"),
        vec![("192.0.2.1".to_owned(), 32)],
        "the address the call added is gone, the one it found is kept"
    );
    assert_eq!(
        routes(&ns, "-4", "ex0"),
        vec![("192.0.2.2".into(), "link".into(), "boot".into())]
    );
    assert_eq!(
        ns.ip_json(&["link", "show", "dev", "ex0"]).arr()[0].num("txqlen"),
        Some(1000),
        "the queue length is back"
    );
    assert_eq!(sysctl(&ns, "ipv4", "ex0", "proxy_arp"), "1");
    let tap: Tap = open_tap(
        &RealSys,
        &OpenOptions {
            name: "ex0".into(),
            netns: in_ns(&ns),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    tap.set_persist(&RealSys, false).unwrap();
    drop(tap);
    assert!(ns.ip(&["-o", "link", "show"]).find("ex0").is_none());
}
