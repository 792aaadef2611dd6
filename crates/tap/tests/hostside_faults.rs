//! Fault injection for the host side of open_tap: fail its k-th syscall
//! (each open, ioctl, setns, netlink socket/send/receive, sysctl read and
//! write), for every k, with the whole routed and bridged configuration
//! asked for, and check that the error names the failed call and that
//! nothing the call did is left:
//!
//! - a device the call creates (persistent, in a namespace): no device, so
//!   none of its addresses, routes or sysctls;
//! - an existing persistent device, down and unbridged before: its MTU, MAC,
//!   master, port flags, queue length, up/down, alias, addresses, routes
//!   (both families) and four sysctls exactly as before;
//! - an existing persistent device that already is a port of the bridge, up,
//!   with some of the address, route and sysctls already there: the same.
//!
//! Always: no fd left, no thread left, the calling thread's namespace
//! unchanged. One #[test] in its own binary, so nothing else opens fds
//! meanwhile. Needs root.

mod support;

use std::fs;

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::netns::NetNsSpec;
use vmtap_core::sys::Call;
use vmtap_core::{
    open_tap, parse_address, parse_route, BridgePortFlags, OpenOptions, RealSys, Tristate,
};

use support::{fd_count, Json, Netns};

const INJECTED: Errno = Errno::EIO;
const BRIDGE: &str = "hfbr";

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn thread_netns() -> std::path::PathBuf {
    fs::read_link("/proc/thread-self/ns/net").unwrap()
}

/// Everything the call may change on `dev`, as the namespace shows it
/// (IPv6 link-local addressing aside: see below).
fn snapshot(ns: &Netns, dev: &str) -> String {
    let link = ns.ip_json(&["-d", "link", "show", "dev", dev]);
    let l = &link.arr()[0];
    let port = l
        .get("linkinfo")
        .and_then(|i| i.get("info_slave_data"))
        .map(|p| {
            format!(
                "isolated={:?} learning={:?} flood={:?} hairpin={:?}",
                p.bool("isolated"),
                p.bool("learning"),
                p.bool("flood"),
                p.bool("hairpin")
            )
        });
    let mut out = format!(
        "mtu={:?} mac={:?} master={:?} up={} txqlen={:?} alias={:?} port={port:?}\n",
        l.num("mtu"),
        l.str("address"),
        l.str("master"),
        l.strs("flags").contains(&"UP".to_owned()),
        l.num("txqlen"),
        l.str("ifalias"),
    );
    let addrs = ns.ip_json(&["addr", "show", "dev", dev]);
    let mut a: Vec<String> = addrs
        .arr()
        .iter()
        .flat_map(|l| l.get("addr_info").map(Json::arr).unwrap_or(&[]).to_vec())
        .filter_map(|a| Some(format!("{}/{}", a.str("local")?, a.num("prefixlen")?)))
        .filter(|a| !a.starts_with("fe80:"))
        .collect();
    a.sort();
    out += &format!("addresses={a:?}\n");
    for family in ["-4", "-6"] {
        let routes = ns.ip_json(&[family, "route", "show", "table", "all", "dev", dev]);
        let mut r: Vec<String> = routes
            .arr()
            .iter()
            // The kernel's IPv6 link-local set-up follows the carrier, which
            // any attached queue turns on: not the call's doing.
            .filter(|r| !matches!(r.str("dst"), Some("fe80::/64" | "ff00::/8")))
            .map(|r| {
                format!(
                    "{} table={:?} proto={:?}",
                    r.str("dst").unwrap_or("?"),
                    r.str("table"),
                    r.str("protocol")
                )
            })
            .collect();
        r.sort();
        out += &format!("routes{family}={r:?}\n");
    }
    let sysctls: Vec<String> = ns.enter(|| {
        [
            "ipv4/conf/{}/proxy_arp",
            "ipv4/conf/{}/forwarding",
            "ipv6/conf/{}/proxy_ndp",
            "ipv6/conf/{}/forwarding",
        ]
        .iter()
        .map(|p| {
            let path = format!("/proc/sys/net/{}", p.replace("{}", dev));
            format!("{p}={}", fs::read_to_string(path).unwrap().trim())
        })
        .collect()
    });
    out += &format!("sysctls={sysctls:?}\n");
    out
}

fn links(ns: &Netns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .ip_json(&["link", "show"])
        .arr()
        .iter()
        .map(|l| l.str("ifname").unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// The options every case opens with: the whole host side.
fn full(ns: &Netns, name: &str) -> OpenOptions {
    let a = |s| parse_address("addresses", s).unwrap();
    let r = |s| parse_route("routes", s).unwrap();
    OpenOptions {
        name: name.into(),
        queues: 2,
        vnet_hdr: Tristate::On,
        netns: Some(NetNsSpec::Path(ns.name.clone())),
        mac: Some([0xfe, 0x54, 0, 0x12, 0x34, 0x56]),
        bridge: Some(BRIDGE.into()),
        bridge_port: Some(BridgePortFlags {
            isolated: Some(true),
            learning: Some(false),
            unicast_flood: Some(false),
            hairpin: Some(true),
        }),
        tx_queue_len: Some(77),
        up: true,
        addresses: vec![a("192.0.2.1/32"), a("2001:db8:1::1/64")],
        routes: vec![r("192.0.2.2/32"), r("2001:db8:2::/64")],
        proxy_arp: Some(true),
        proxy_ndp: Some(true),
        forwarding: Some(true),
        tag: Some("hostside".into()),
        ..OpenOptions::default()
    }
}

/// A persistent device `name` in `ns`, made as a VM launcher might have left
/// it: down, unbridged (`port` false), or up and a port of the bridge with
/// the address, the IPv4 route and proxy ARP of [`full`] already there.
fn existing(ns: &Netns, name: &str, port: bool) {
    let opts = OpenOptions {
        name: name.into(),
        queues: 2,
        netns: Some(NetNsSpec::Path(ns.name.clone())),
        persist: true,
        mtu: Some(1400),
        mac: Some([0xfe, 0, 0, 0, 0, 1]),
        ..OpenOptions::default()
    };
    open_tap(&RealSys, &opts).unwrap().close().unwrap();
    ns.ip(&["addr", "add", "10.9.0.1/24", "dev", name]);
    if port {
        // (with the bridge's MTU first, or the bridge would follow it down)
        ns.ip(&["link", "set", name, "mtu", "9000"]);
        ns.ip(&["link", "set", name, "master", BRIDGE, "up"]);
        ns.ip(&["link", "set", name, "alias", "vmtap:tag=old"]);
        ns.ip(&["addr", "add", "192.0.2.1/32", "dev", name]);
        ns.ip(&["route", "add", "192.0.2.2/32", "dev", name]);
        ns.exec(
            "sh",
            &[
                "-c",
                &format!("echo 1 > /proc/sys/net/ipv4/conf/{name}/proxy_arp"),
            ],
        );
    }
}

struct Case {
    label: &'static str,
    name: &'static str,
    /// None: the call creates the device; Some(port): an existing one.
    existing: Option<bool>,
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, /dev/net/tun, ip netns)"]
fn every_failing_syscall_of_a_configured_open_leaves_nothing() {
    let ns = Netns::new("hostfaults");
    // A bridge whose 9000-byte MTU comes from a port: the tap must take it.
    ns.ip(&["link", "add", BRIDGE, "type", "bridge"]);
    ns.ip(&[
        "link", "add", "hfv0", "mtu", "9000", "type", "veth", "peer", "name", "hfv1", "mtu", "9000",
    ]);
    ns.ip(&["link", "set", "hfv0", "master", BRIDGE]);
    let home = thread_netns();
    let cases = [
        Case {
            label: "created, persistent",
            name: "hfc0",
            existing: None,
        },
        Case {
            label: "existing, down and unbridged",
            name: "hfe0",
            existing: Some(false),
        },
        Case {
            label: "existing port, up, partly configured",
            name: "hfp0",
            existing: Some(true),
        },
    ];
    for case in &cases {
        let mut opts = full(&ns, case.name);
        opts.persist = case.existing.is_none();
        let setup = || {
            if let Some(port) = case.existing {
                existing(&ns, case.name, port);
            }
        };
        let teardown = || {
            if links(&ns).contains(&case.name.to_owned()) {
                ns.ip(&["link", "del", case.name]);
            }
        };
        let base_links = links(&ns);

        // A clean run tells how many syscalls the open makes.
        setup();
        let counting = FaultSys::new(RealSys, 0, INJECTED);
        let tap = open_tap(&counting, &opts)
            .unwrap_or_else(|e| panic!("{}: clean open failed: {e}", case.label));
        let total = counting.calls().len();
        let configured = snapshot(&ns, case.name);
        assert!(configured.contains("mtu=Some(9000)"), "{configured}");
        assert!(configured.contains("isolated=Some(true)"), "{configured}");
        drop(tap);
        teardown();
        assert_eq!(links(&ns), base_links, "{}: clean run", case.label);

        let fds = fd_count();
        let threads = thread_count();
        let (mut failed, mut survived) = (0, 0);
        for k in 1..=total {
            setup();
            let before = case.existing.map(|_| snapshot(&ns, case.name));
            let sys = FaultSys::new(RealSys, k, INJECTED);
            let result = open_tap(&sys, &opts);
            let call = sys.failed_call().expect("the k-th call happened");
            let what = format!("{} k={k}/{total} ({call:?})", case.label);
            match result {
                Err(e) => {
                    failed += 1;
                    assert_eq!(e.errno(), Some(INJECTED), "{what}: {e}");
                    match &e {
                        vmtap_core::Error::Os(os) => {
                            assert_eq!(os.syscall, call.label(), "{what}: names the call")
                        }
                        other => panic!("{what}: {other:?}"),
                    }
                    match &before {
                        None => assert_eq!(links(&ns), base_links, "{what}: a device survived"),
                        Some(before) => {
                            assert_eq!(&snapshot(&ns, case.name), before, "{what}: not restored")
                        }
                    }
                }
                Ok(tap) => {
                    // Only a look-up for a hint may fail without failing the open.
                    survived += 1;
                    let optional =
                        call == Call::Socket || call == Call::Ioctl("ioctl(SIOCGIFINDEX)");
                    assert!(optional, "{what}: failed but open_tap succeeded");
                    drop(tap);
                }
            }
            teardown();
            assert_eq!(fd_count(), fds, "{what}: an fd leaked");
            assert_eq!(thread_count(), threads, "{what}: a thread survived");
            assert_eq!(thread_netns(), home, "{what}: the calling thread moved");
            assert_eq!(links(&ns), base_links, "{what}: links");
        }
        eprintln!(
            "hostside faults: {}: {total} syscalls, {failed} failures reported, {survived} optional",
            case.label
        );
        assert!(failed > total / 2);
    }
    methods(&ns, &home);
}

/// Each host-side method of an open device, every call failed in turn: the
/// error names the call, no fd or thread is left, and a failed
/// set_forwarding leaves both families' forwarding as they were.
fn methods(ns: &Netns, home: &std::path::Path) {
    let opts = OpenOptions {
        name: "hfm0".into(),
        netns: Some(NetNsSpec::Path(ns.name.clone())),
        bridge: Some(BRIDGE.into()),
        up: true,
        ..OpenOptions::default()
    };
    let tap = open_tap(&RealSys, &opts).unwrap();
    // Looked up once and remembered: counted calls must not shrink later.
    tap.ifindex(&RealSys).unwrap();
    let a = parse_address("cidr", "192.0.2.9/32").unwrap();
    let r = parse_route("dest", "203.0.113.0/24").unwrap();
    type Method<'a> = (
        &'a str,
        Box<dyn Fn(&dyn vmtap_core::Sys) -> vmtap_core::Result<()> + 'a>,
    );
    let tap = &tap;
    let methods: Vec<Method<'_>> = vec![
        ("add_address", Box::new(move |s| tap.add_address(s, &a))),
        (
            "remove_address",
            Box::new(move |s| tap.remove_address(s, &a)),
        ),
        ("add_route", Box::new(move |s| tap.add_route(s, &r))),
        ("remove_route", Box::new(move |s| tap.remove_route(s, &r))),
        ("set_proxy_arp", Box::new(|s| tap.set_proxy_arp(s, true))),
        ("set_proxy_ndp", Box::new(|s| tap.set_proxy_ndp(s, true))),
        ("set_forwarding", Box::new(|s| tap.set_forwarding(s, true))),
        (
            "set_tx_queue_len",
            Box::new(|s| tap.set_tx_queue_len(s, 99)),
        ),
        ("set_carrier", Box::new(|s| tap.set_carrier(s, false))),
        (
            "set_bridge_port",
            Box::new(|s| {
                let f = BridgePortFlags {
                    isolated: Some(true),
                    ..Default::default()
                };
                tap.set_bridge_port(s, &f)
            }),
        ),
        (
            "get_link_info",
            Box::new(|s| tap.get_link_info(s).map(drop)),
        ),
    ];
    let forwarding = || {
        ns.enter(|| {
            ["ipv4", "ipv6"].map(|f| {
                fs::read_to_string(format!("/proc/sys/net/{f}/conf/hfm0/forwarding")).unwrap()
            })
        })
    };
    let fds = fd_count();
    let threads = thread_count();
    // Before each call: what it needs; after: back to the start.
    let prep = |label: &str| match label {
        "remove_address" => tap.add_address(&RealSys, &a).unwrap(),
        "remove_route" => tap.add_route(&RealSys, &r).unwrap(),
        _ => {}
    };
    let reset = |label: &str| match label {
        "add_address" | "remove_address" => {
            let _ = tap.remove_address(&RealSys, &a);
        }
        "add_route" | "remove_route" => {
            let _ = tap.remove_route(&RealSys, &r);
        }
        "set_forwarding" => tap.set_forwarding(&RealSys, false).unwrap(),
        "set_proxy_arp" => tap.set_proxy_arp(&RealSys, false).unwrap(),
        "set_proxy_ndp" => tap.set_proxy_ndp(&RealSys, false).unwrap(),
        _ => {}
    };
    for (label, f) in &methods {
        prep(label);
        let counting = FaultSys::new(RealSys, 0, INJECTED);
        f(&counting).unwrap_or_else(|e| panic!("{label}: clean call failed: {e}"));
        let total = counting.calls().len();
        reset(label);
        for k in 1..=total {
            prep(label);
            let before = forwarding();
            let sys = FaultSys::new(RealSys, k, INJECTED);
            let e = f(&sys).expect_err(label);
            let call = sys.failed_call().unwrap();
            let what = format!("{label} k={k}/{total} ({call:?})");
            assert_eq!(e.errno(), Some(INJECTED), "{what}: {e}");
            if let vmtap_core::Error::Os(os) = &e {
                assert_eq!(os.syscall, call.label(), "{what}");
            }
            assert_eq!(forwarding(), before, "{what}: forwarding not restored");
            reset(label);
            assert_eq!(fd_count(), fds, "{what}: an fd leaked");
            assert_eq!(thread_count(), threads, "{what}: a thread survived");
            assert_eq!(thread_netns(), home, "{what}: the calling thread moved");
        }
        eprintln!("hostside faults: {label}: {total} syscalls, each failed in turn");
    }
}
