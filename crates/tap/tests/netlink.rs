//! vmtap_core::netlink against the kernel, each test in a network namespace
//! of its own, compared with what `ip -j` and `bridge -j` report. Needs root
//! (ignored otherwise; scripts/test-rust.mjs includes them as root).

mod support;

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use vmtap_core::link::format_mac;
use vmtap_core::netlink::link::oper_state_name;
use vmtap_core::netlink::*;
use vmtap_core::sys::consts::*;
use vmtap_core::sys::{IfReq, Ioctl};
use vmtap_core::{Error, RealSys, Sys};

use support::{Json, Netns};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A netlink socket in the namespace (usable from this thread afterwards).
fn netlink(ns: &Netns) -> Netlink<'static> {
    ns.enter(|| Netlink::open(&RealSys).unwrap())
}

fn index_of(links: &[Link], name: &str) -> u32 {
    links.iter().find(|l| l.ifname == name).unwrap().ifindex
}

/// The names iproute2 prints for `ifi_flags` (it never prints RUNNING).
fn flag_names(flags: u32) -> BTreeSet<String> {
    const NAMES: [(u32, &str); 18] = [
        (0x8, "LOOPBACK"),
        (0x2, "BROADCAST"),
        (0x10, "POINTOPOINT"),
        (0x1000, "MULTICAST"),
        (0x80, "NOARP"),
        (0x200, "ALLMULTI"),
        (0x100, "PROMISC"),
        (0x400, "MASTER"),
        (0x800, "SLAVE"),
        (0x4, "DEBUG"),
        (0x8000, "DYNAMIC"),
        (0x4000, "AUTOMEDIA"),
        (0x2000, "PORTSEL"),
        (0x20, "NOTRAILERS"),
        (0x1, "UP"),
        (0x10000, "LOWER_UP"),
        (0x20000, "DORMANT"),
        (0x40000, "ECHO"),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn stp_state_name(state: u8) -> &'static str {
    [
        "disabled",
        "listening",
        "learning",
        "forwarding",
        "blocking",
    ][usize::from(state)]
}

/// A mismatch between ip's value and ours, as a line for the report.
macro_rules! differ {
    ($d:ident, $theirs:expr, $ours:expr, $($what:tt)+) => {{
        let (theirs, ours) = (&$theirs, &$ours);
        if theirs != ours {
            $d.push(format!("{}: ip {theirs:?}, ours {ours:?}", format!($($what)+)));
        }
    }};
}

/// Ours, dumped before and after ip's, against ip's by `diffs` (a line per
/// mismatch; none when they agree): ip's must match one of ours. The kernel
/// settles some state asynchronously after a change (a link's operstate and
/// carrier after `ip link set up`, a bridge port's state, IPv6 link-local
/// addresses and their routes once the carrier is seen), so while ours
/// changed between its two dumps (`same` says), the three are taken again,
/// for up to 30 s. If ours did not change and ip's still differs, the
/// mismatch is real: it fails at once. Returns the dump of ours that matched.
fn matches_ip<T>(
    mut ours: impl FnMut() -> T,
    ip: impl Fn() -> Json,
    diffs: impl Fn(&Json, &T) -> Vec<String>,
    same: impl Fn(&T, &T) -> bool,
    what: &str,
) -> T {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let before = ours();
        let theirs = ip();
        let after = ours();
        let d_before = diffs(&theirs, &before);
        if d_before.is_empty() {
            return before;
        }
        let d_after = diffs(&theirs, &after);
        if d_after.is_empty() {
            return after;
        }
        let settled = same(&before, &after);
        assert!(
            !settled && Instant::now() < until,
            "{what}: ip's dump matches neither of ours around it ({}):\n{}\n-- and after --\n{}",
            if settled {
                "ours did not change"
            } else {
                "still changing after 30 s"
            },
            d_before.join("\n"),
            d_after.join("\n")
        );
    }
}

/// Our link dump against `ip -d -j link show`, field by field (see
/// [`matches_ip`]); returns our dump that matched.
fn compare_links(ns: &Netns, nl: &mut Netlink<'_>) -> Vec<Link> {
    let without_stats = |v: &[Link]| -> Vec<Link> {
        v.iter()
            .cloned()
            .map(|l| Link { stats: None, ..l })
            .collect()
    };
    matches_ip(
        || nl.links(&LinkFilter::default()).unwrap(),
        || ns.ip_json(&["-d", "link", "show"]),
        |theirs, links| link_diffs(theirs, links),
        |a, b| without_stats(a) == without_stats(b),
        "links",
    )
}

/// Where `ip -d -j link show` and our dump differ, field by field.
fn link_diffs(theirs: &Json, links: &[Link]) -> Vec<String> {
    let mut d = Vec::new();
    let name_of = |i: u32| {
        links
            .iter()
            .find(|l| l.ifindex == i)
            .map(|l| l.ifname.as_str())
    };
    let ours: HashMap<u32, &Link> = links.iter().map(|l| (l.ifindex, l)).collect();
    differ!(d, theirs.arr().len(), links.len(), "the number of links");
    for j in theirs.arr() {
        let index = j.num("ifindex").unwrap() as u32;
        let Some(l) = ours.get(&index) else {
            d.push(format!(
                "link {index} ({:?}) is not in our dump",
                j.str("ifname")
            ));
            continue;
        };
        let n = &l.ifname;
        differ!(d, j.str("ifname"), Some(n.as_str()), "{index} ifname");
        differ!(d, j.num("mtu"), l.mtu.map(u64::from), "{n} mtu");
        differ!(d, j.num("min_mtu"), l.min_mtu.map(u64::from), "{n} min_mtu");
        differ!(d, j.num("max_mtu"), l.max_mtu.map(u64::from), "{n} max_mtu");
        differ!(d, j.num("txqlen"), l.txqlen.map(u64::from), "{n} txqlen");
        let num_tx = l.num_tx_queues.map(u64::from);
        differ!(d, j.num("num_tx_queues"), num_tx, "{n} num_tx_queues");
        let num_rx = l.num_rx_queues.map(u64::from);
        differ!(d, j.num("num_rx_queues"), num_rx, "{n} num_rx_queues");
        let mac = l.mac.map(|m| format_mac(&m));
        differ!(d, j.str("address"), mac.as_deref(), "{n} address");
        differ!(d, j.str("master"), l.master.and_then(name_of), "{n} master");
        differ!(d, j.str("ifalias"), l.alias.as_deref(), "{n} alias");
        differ!(
            d,
            j.str("operstate"),
            l.operstate.map(oper_state_name),
            "{n} operstate"
        );
        let flags = j.strs("flags");
        let printed: BTreeSet<String> = flags
            .iter()
            .filter(|f| *f != "NO-CARRIER" && *f != "M-DOWN")
            .cloned()
            .collect();
        differ!(d, printed, flag_names(l.flags), "{n} flags");
        let no_carrier = l.is_up() && l.flags & IFF_RUNNING == 0;
        differ!(
            d,
            flags.iter().any(|f| f == "NO-CARRIER"),
            no_carrier,
            "{n} NO-CARRIER"
        );
        if l.is_up() {
            let lower_up = Some(l.flags & IFF_LOWER_UP != 0);
            differ!(
                d,
                lower_up,
                l.carrier,
                "{n} carrier (LOWER_UP, IFLA_CARRIER)"
            );
        }
        match (j.str("link"), j.num("link_index")) {
            (Some(lower), _) => differ!(d, Some(lower), l.link.and_then(name_of), "{n} link"),
            (None, Some(i)) => differ!(d, Some(i), l.link.map(u64::from), "{n} link"),
            (None, None) => {
                if !l.link.map_or(true, |i| i == l.ifindex) {
                    d.push(format!("{n} link: ip none, ours {:?}", l.link));
                }
            }
        }

        let info = j.get("linkinfo");
        let info_str = |k: &str| info.and_then(|i| i.str(k));
        differ!(d, info_str("info_kind"), l.kind.as_deref(), "{n} kind");
        differ!(
            d,
            info_str("info_slave_kind"),
            l.slave_kind.as_deref(),
            "{n} slave kind"
        );
        let data = info.and_then(|i| i.get("info_data"));
        if let Some(t) = &l.tun {
            let Some(data) = data else {
                d.push(format!("{n}: ip shows no info_data for a tun"));
                continue;
            };
            differ!(
                d,
                data.str("type"),
                Some(if t.tap { "tap" } else { "tun" }),
                "{n} type"
            );
            differ!(d, data.bool("pi"), Some(t.pi), "{n} pi");
            differ!(d, data.bool("vnet_hdr"), Some(t.vnet_hdr), "{n} vnet_hdr");
            differ!(d, data.bool("multi_queue"), Some(t.multi_queue), "{n} mq");
            differ!(d, data.bool("persist"), Some(t.persist), "{n} persist");
            // Numeric ids only here: ip prints a name when the id has one.
            differ!(d, data.num("user"), t.owner.map(u64::from), "{n} user");
            differ!(d, data.num("group"), t.group.map(u64::from), "{n} group");
            let queues = t.num_queues.map(u64::from);
            differ!(d, data.num("numqueues"), queues, "{n} numqueues");
            let disabled = t.num_disabled_queues.map(u64::from);
            differ!(d, data.num("numdisabled"), disabled, "{n} numdisabled");
        }
        if let Some(mode) = l.macvlan_mode {
            let name = MacvlanMode::from_raw(mode).unwrap().name();
            differ!(d, data.and_then(|x| x.str("mode")), Some(name), "{n} mode");
        }
        if let Some(p) = &l.bridge_port {
            let Some(s) = info.and_then(|i| i.get("info_slave_data")) else {
                d.push(format!(
                    "{n}: ip shows no info_slave_data for a bridge port"
                ));
                continue;
            };
            differ!(d, s.str("state"), p.state.map(stp_state_name), "{n} state");
            differ!(
                d,
                s.num("priority"),
                p.priority.map(u64::from),
                "{n} priority"
            );
            differ!(d, s.num("cost"), p.cost.map(u64::from), "{n} cost");
            differ!(d, s.bool("hairpin"), p.hairpin, "{n} hairpin");
            differ!(d, s.bool("learning"), p.learning, "{n} learning");
            differ!(d, s.bool("flood"), p.unicast_flood, "{n} flood");
            differ!(d, s.bool("mcast_flood"), p.mcast_flood, "{n} mcast_flood");
            differ!(d, s.bool("bcast_flood"), p.bcast_flood, "{n} bcast_flood");
            differ!(d, s.bool("isolated"), p.isolated, "{n} isolated");
        }
    }
    d
}

/// Where `ip -j addr show dev D` and our dump of D's addresses differ.
fn address_diffs(theirs: &Json, ours: &[Address]) -> Vec<String> {
    let mut d = Vec::new();
    let theirs = theirs.arr()[0].get("addr_info").unwrap().arr();
    differ!(d, theirs.len(), ours.len(), "the number of addresses");
    for j in theirs {
        let local = ip(j.str("local").unwrap());
        let Some(a) = ours.iter().find(|a| a.ip() == Some(local)) else {
            d.push(format!("{local} is not in our dump"));
            continue;
        };
        let prefix_len = Some(u64::from(a.prefix_len));
        differ!(d, j.num("prefixlen"), prefix_len, "{local} prefixlen");
        let family = if a.family == IpFamily::V4 {
            "inet"
        } else {
            "inet6"
        };
        differ!(d, j.str("family"), Some(family), "{local} family");
        let scope = match a.scope {
            RT_SCOPE_UNIVERSE => "global",
            RT_SCOPE_LINK => "link",
            RT_SCOPE_HOST => "host",
            _ => "other",
        };
        differ!(d, j.str("scope"), Some(scope), "{local} scope");
        differ!(d, j.str("label"), a.label.as_deref(), "{local} label");
    }
    d
}

/// Where `ip -j -4|-6 route show table main` and our dump of it differ;
/// `index`: the links' indexes by name.
fn route_diffs(
    theirs: &Json,
    ours: &[Route],
    f: IpFamily,
    index: &HashMap<String, u32>,
) -> Vec<String> {
    let mut d = Vec::new();
    differ!(
        d,
        theirs.arr().len(),
        ours.len(),
        "the number of {f:?} routes"
    );
    for j in theirs.arr() {
        let dst = j.str("dst").unwrap();
        let dev = index.get(j.str("dev").unwrap()).copied();
        let Some(r) = ours.iter().find(|r| {
            let full = format!("{}/{}", r.dst.unwrap(), r.dst_len);
            let host = r.dst_len == f.max_prefix_len() && r.dst.unwrap().to_string() == dst;
            (full == dst || host) && r.oif == dev
        }) else {
            d.push(format!("{dst} is not in our dump: {ours:?}"));
            continue;
        };
        differ!(d, j.str("gateway").map(ip), r.gateway, "{dst} gateway");
        differ!(
            d,
            j.num("metric"),
            r.priority.map(u64::from),
            "{dst} metric"
        );
        let scope = if r.scope == RT_SCOPE_LINK {
            Some("link")
        } else {
            None
        };
        differ!(d, j.str("scope"), scope, "{dst} scope");
        let proto = match r.protocol {
            RTPROT_KERNEL => Some("kernel"),
            RTPROT_BOOT => None, // ip leaves the default out
            _ => Some("other"),
        };
        differ!(d, j.str("protocol"), proto, "{dst} protocol");
    }
    d
}

/// Counters: ours before <= ip's <= ours after (traffic may happen between).
fn compare_stats(ns: &Netns, nl: &mut Netlink<'_>) {
    let before = nl.links(&LinkFilter::default()).unwrap();
    let theirs = ns.ip_json(&["-s", "link", "show"]);
    let after = nl.links(&LinkFilter::default()).unwrap();
    for j in theirs.arr() {
        let i = j.num("ifindex").unwrap() as u32;
        let find = |v: &[Link]| v.iter().find(|l| l.ifindex == i).unwrap().stats.unwrap();
        let (b, a) = (find(&before), find(&after));
        let s = j.get("stats64").unwrap();
        let (rx, tx) = (s.get("rx").unwrap(), s.get("tx").unwrap());
        for (name, got, lo, hi) in [
            ("rx bytes", rx.num("bytes"), b.rx_bytes, a.rx_bytes),
            ("rx packets", rx.num("packets"), b.rx_packets, a.rx_packets),
            ("rx errors", rx.num("errors"), b.rx_errors, a.rx_errors),
            ("rx dropped", rx.num("dropped"), b.rx_dropped, a.rx_dropped),
            ("multicast", rx.num("multicast"), b.multicast, a.multicast),
            ("tx bytes", tx.num("bytes"), b.tx_bytes, a.tx_bytes),
            ("tx packets", tx.num("packets"), b.tx_packets, a.tx_packets),
            ("tx errors", tx.num("errors"), b.tx_errors, a.tx_errors),
            ("tx dropped", tx.num("dropped"), b.tx_dropped, a.tx_dropped),
            (
                "collisions",
                tx.num("collisions"),
                b.collisions,
                a.collisions,
            ),
        ] {
            let got = got.unwrap();
            assert!(
                lo <= got && got <= hi,
                "link {i} {name}: {lo} <= {got} <= {hi}"
            );
        }
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn link_dump_matches_ip() {
    let ns = Netns::new("dump");
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&[
        "link", "add", "link", "vb0", "name", "mv0", "type", "macvtap", "mode", "bridge",
    ]);
    // Persistent with owner and group, vnet_hdr off; persistent multi-queue; a tun with pi.
    ns.ip(&[
        "tuntap", "add", "dev", "tp0", "mode", "tap", "user", "4242", "group", "4243",
    ]);
    ns.ip(&[
        "tuntap",
        "add",
        "dev",
        "tq0",
        "mode",
        "tap",
        "multi_queue",
        "vnet_hdr",
    ]);
    ns.ip(&["tuntap", "add", "dev", "tn0", "mode", "tun", "pi"]);
    // Not persistent: a single-queue tap and a 3-queue one with a queue disabled.
    let _single = ns.hold("ts0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 1);
    let multi = ns.hold("tm0", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, 3);
    let mut detach = IfReq::with_name_flags("", IFF_DETACH_QUEUE);
    RealSys
        .ioctl(multi[2].as_fd(), &mut Ioctl::TunSetQueue(&mut detach))
        .unwrap();
    // A bridge port with an alias and its port flags set by `bridge`.
    ns.ip(&["link", "set", "tp0", "master", "br0", "alias", "vm 1 (tp0)"]);
    ns.exec(
        "bridge",
        &[
            "link", "set", "dev", "tp0", "isolated", "on", "learning", "off", "hairpin", "on",
        ],
    );
    for dev in ["br0", "tp0", "vb0", "vb1", "tq0"] {
        ns.ip(&["link", "set", dev, "up"]);
    }

    let mut nl = netlink(&ns);
    let links = compare_links(&ns, &mut nl);
    compare_stats(&ns, &mut nl);

    let by = |n: &str| links.iter().find(|l| l.ifname == n).unwrap();
    let tp0 = by("tp0");
    assert_eq!(tp0.tun.unwrap().owner, Some(4242));
    assert_eq!(tp0.master, Some(index_of(&links, "br0")));
    let port = tp0.bridge_port.unwrap();
    assert_eq!(
        (port.isolated, port.learning, port.hairpin),
        (Some(true), Some(false), Some(true))
    );
    let tm0 = by("tm0").tun.unwrap();
    assert_eq!(
        (tm0.num_queues, tm0.num_disabled_queues),
        (Some(2), Some(1))
    );
    assert!(by("tn0").mac.is_none() && !by("tn0").tun.unwrap().tap);
    assert_eq!(by("mv0").link, Some(index_of(&links, "vb0")));

    // Filters (by the kernel, and again here).
    let tun = LinkFilter {
        kind: Some("tun".into()),
        ..Default::default()
    };
    let mut names: Vec<_> = nl
        .links(&tun)
        .unwrap()
        .into_iter()
        .map(|l| l.ifname)
        .collect();
    names.sort();
    assert_eq!(names, ["tm0", "tn0", "tp0", "tq0", "ts0"]);
    let ip_tun = ns.ip_json(&["-d", "link", "show", "type", "tun"]);
    assert_eq!(ip_tun.arr().len(), names.len());
    let ports = LinkFilter {
        master: Some(index_of(&links, "br0")),
        ..Default::default()
    };
    let ports = nl.links(&ports).unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].ifname, "tp0");

    // One link, by index and by name; a missing one is None.
    let again = nl.link(LinkRef::Index(tp0.ifindex)).unwrap().unwrap();
    assert_eq!(
        (again.ifname.as_str(), again.alias.as_deref()),
        ("tp0", Some("vm 1 (tp0)"))
    );
    let by_name = nl.link(LinkRef::Name("tm0")).unwrap().unwrap();
    assert_eq!(by_name.tun, by("tm0").tun);
    assert_eq!(nl.link(LinkRef::Name("nope0")).unwrap(), None);
    assert_eq!(nl.link(LinkRef::Index(99999)).unwrap(), None);

    // The AF_BRIDGE dump agrees with `bridge -j link show`.
    let ours = nl.bridge_ports().unwrap();
    let theirs = Json::parse(&ns.exec("bridge", &["-d", "-j", "link", "show"]));
    assert_eq!(ours.len(), theirs.arr().len());
    for j in theirs.arr() {
        let p = ours
            .iter()
            .find(|p| Some(p.ifname.as_str()) == j.str("ifname"))
            .unwrap();
        assert_eq!(j.num("ifindex"), Some(u64::from(p.ifindex)));
        assert_eq!(j.bool("isolated"), p.port.isolated);
        assert_eq!(j.bool("learning"), p.port.learning);
        assert_eq!(j.bool("hairpin"), p.port.hairpin);
        assert_eq!(j.bool("flood"), p.port.unicast_flood);
        assert_eq!(j.str("state"), p.port.state.map(stp_state_name));
        assert_eq!(p.master, Some(index_of(&links, "br0")));
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn link_changes_show_in_ip() {
    let ns = Netns::new("set");
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["tuntap", "add", "dev", "tp0", "mode", "tap"]);
    let mut nl = netlink(&ns);
    let links = nl.links(&LinkFilter::default()).unwrap();
    let (tp0, br0) = (index_of(&links, "tp0"), index_of(&links, "br0"));
    let show = || ns.ip_json(&["-d", "link", "show", "dev", "tp0"]).arr()[0].clone();

    let change = LinkChange {
        alias: Some("guest vm-7".into()),
        mtu: Some(9000),
        mac: Some([0xfe, 0x54, 0, 0x12, 0x34, 0x56]),
        txqlen: Some(2000),
        up: Some(true),
        master: Some(br0),
    };
    nl.set_link(tp0, &change).unwrap();
    let j = show();
    assert_eq!(j.str("ifalias"), Some("guest vm-7"));
    assert_eq!((j.num("mtu"), j.num("txqlen")), (Some(9000), Some(2000)));
    assert_eq!(j.str("address"), Some("fe:54:00:12:34:56"));
    assert_eq!(j.str("master"), Some("br0"));
    assert!(j.strs("flags").contains(&"UP".to_owned()));
    let now = nl.link(LinkRef::Index(tp0)).unwrap().unwrap();
    assert_eq!(now.alias.as_deref(), Some("guest vm-7"));
    compare_links(&ns, &mut nl);

    // One attribute at a time, the other way.
    let one = |c: LinkChange| (tp0, c);
    for (i, c) in [
        one(LinkChange {
            alias: Some(String::new()),
            ..Default::default()
        }),
        one(LinkChange {
            up: Some(false),
            ..Default::default()
        }),
        one(LinkChange {
            master: Some(0),
            ..Default::default()
        }),
        one(LinkChange {
            mtu: Some(1500),
            ..Default::default()
        }),
    ] {
        nl.set_link(i, &c).unwrap();
    }
    let j = show();
    assert_eq!((j.str("ifalias"), j.str("master")), (None, None));
    assert!(!j.strs("flags").contains(&"UP".to_owned()));
    assert_eq!(j.num("mtu"), Some(1500));
    let now = nl.link(LinkRef::Index(tp0)).unwrap().unwrap();
    assert_eq!(
        (now.alias.as_deref(), now.master, now.is_up()),
        (None, None, false)
    );

    // Bridge port flags, read back three ways.
    nl.set_link(
        tp0,
        &LinkChange {
            master: Some(br0),
            ..Default::default()
        },
    )
    .unwrap();
    let flags = BridgePort {
        isolated: Some(true),
        learning: Some(false),
        unicast_flood: Some(false),
        hairpin: Some(true),
        ..Default::default()
    };
    nl.set_bridge_port(tp0, &flags).unwrap();
    let bridge = Json::parse(&ns.exec("bridge", &["-d", "-j", "link", "show", "dev", "tp0"]));
    let b = &bridge.arr()[0];
    assert_eq!(
        (
            b.bool("isolated"),
            b.bool("learning"),
            b.bool("flood"),
            b.bool("hairpin")
        ),
        (Some(true), Some(false), Some(false), Some(true))
    );
    let port = nl
        .link(LinkRef::Index(tp0))
        .unwrap()
        .unwrap()
        .bridge_port
        .unwrap();
    assert_eq!(
        (
            port.isolated,
            port.learning,
            port.unicast_flood,
            port.hairpin
        ),
        (Some(true), Some(false), Some(false), Some(true))
    );
    let entry = nl.bridge_ports().unwrap().pop().unwrap();
    assert_eq!(entry.port, port);
    let back = BridgePort {
        isolated: Some(false),
        learning: Some(true),
        ..Default::default()
    };
    nl.set_bridge_port(tp0, &back).unwrap();
    let port = nl.bridge_ports().unwrap().pop().unwrap().port;
    assert_eq!((port.isolated, port.learning), (Some(false), Some(true)));

    // Refusals: the kernel's own words in the hint.
    let e = nl
        .set_link(
            tp0,
            &LinkChange {
                mtu: Some(65535),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    let os = os_error(&e);
    assert_eq!(os.syscall, "netlink(RTM_NEWLINK)");
    assert!(
        os.hint
            .as_deref()
            .unwrap()
            .contains("mtu greater than device maximum"),
        "{e}"
    );
    let e = nl
        .set_link(
            99999,
            &LinkChange {
                mtu: Some(1500),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    let e = nl
        .set_link(
            tp0,
            &LinkChange {
                master: Some(99999),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    let e = nl.set_bridge_port(br0, &flags).unwrap_err();
    assert_eq!(e.code(), "EOPNOTSUPP");
    assert!(e.to_string().contains("is not a bridge port"), "{e}");
}

fn os_error(e: &Error) -> &vmtap_core::OsError {
    match e {
        Error::Os(os) => os,
        other => panic!("{other:?}"),
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn macvtap_create_and_delete() {
    let ns = Netns::new("mvt");
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    let mut nl = netlink(&ns);
    let vb0 = nl.link(LinkRef::Name("vb0")).unwrap().unwrap().ifindex;

    let spec = MacvtapSpec {
        name: Some("mvt0".into()),
        lower: vb0,
        mode: MacvlanMode::Vepa,
        mac: Some([0x52, 0x54, 0, 0xaa, 0xbb, 0xcc]),
        mtu: Some(1400),
        tx_queues: Some(4),
        rx_queues: Some(4),
        up: true,
    };
    let m = nl.create_macvtap(&spec).unwrap();
    assert_eq!(
        (m.ifname.as_str(), m.kind.as_deref()),
        ("mvt0", Some("macvtap"))
    );
    assert_eq!(
        (m.link, m.macvlan_mode),
        (Some(vb0), Some(MacvlanMode::Vepa as u32))
    );
    assert_eq!((m.mtu, m.mac), (Some(1400), spec.mac));
    assert_eq!((m.num_tx_queues, m.num_rx_queues), (Some(4), Some(4)));
    assert!(m.is_up());
    let j = ns.ip_json(&["-d", "link", "show", "dev", "mvt0"]).arr()[0].clone();
    assert_eq!(j.num("ifindex"), Some(u64::from(m.ifindex)));
    assert_eq!(
        j.get("linkinfo")
            .unwrap()
            .get("info_data")
            .unwrap()
            .str("mode"),
        Some("vepa")
    );
    assert_eq!(j.str("link"), Some("vb0"));
    compare_links(&ns, &mut nl);

    // Without a name: the kernel picks one and sends the link back.
    let anon = nl
        .create_macvtap(&MacvtapSpec {
            lower: vb0,
            ..Default::default()
        })
        .unwrap();
    assert!(anon.ifname.starts_with("macvtap"), "{}", anon.ifname);
    assert_eq!(anon.macvlan_mode, Some(MacvlanMode::Bridge as u32));

    // Refusals.
    let e = nl.create_macvtap(&spec).unwrap_err();
    assert_eq!(e.code(), "EEXIST");
    assert_eq!(os_error(&e).ifname.as_deref(), Some("mvt0"));
    let e = nl
        .create_macvtap(&MacvtapSpec {
            name: Some("mvt1".into()),
            lower: 99999,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    assert!(
        e.to_string()
            .contains("no lower interface with index 99999"),
        "{e}"
    );

    nl.delete_link(m.ifindex).unwrap();
    nl.delete_link(anon.ifindex).unwrap();
    let kinds = LinkFilter {
        kind: Some("macvtap".into()),
        ..Default::default()
    };
    assert!(nl.links(&kinds).unwrap().is_empty());
    assert_eq!(
        ns.ip_json(&["link", "show", "type", "macvtap"]).arr().len(),
        0
    );
    let e = nl.delete_link(m.ifindex).unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    assert!(e.to_string().contains("no interface with index"), "{e}");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn addresses_and_routes_show_in_ip() {
    let ns = Netns::new("addr");
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    ns.ip(&["link", "set", "vb0", "up"]);
    ns.ip(&["link", "set", "vb1", "up"]);
    let mut nl = netlink(&ns);
    let vb0 = nl.link(LinkRef::Name("vb0")).unwrap().unwrap().ifindex;

    nl.add_address(vb0, ip("10.20.0.1"), 24).unwrap();
    nl.add_address(vb0, ip("2001:db8:20::1"), 64).unwrap();
    // vb0's IPv6 link-local address comes once the kernel has seen its
    // carrier, in its own time (see matches_ip).
    matches_ip(
        || nl.addresses(None, Some(vb0)).unwrap(),
        || ns.ip_json(&["addr", "show", "dev", "vb0"]),
        |theirs, ours: &Vec<Address>| address_diffs(theirs, ours),
        |a, b| a == b,
        "vb0's addresses",
    );
    let v4 = nl.addresses(Some(IpFamily::V4), None).unwrap();
    assert_eq!(v4.len(), 1);
    assert_eq!(v4[0].local, Some(ip("10.20.0.1")));

    let r4 = RouteSpec::device(ip("10.30.0.0"), 16, vb0);
    let r6 = RouteSpec::device(ip("2001:db8:30::"), 48, vb0);
    let via = RouteSpec {
        gateway: Some(ip("10.20.0.254")),
        metric: Some(50),
        ..RouteSpec::device(ip("10.40.0.0"), 16, vb0)
    };
    for r in [&r4, &r6, &via] {
        nl.add_route(r).unwrap();
    }
    // The links by name, for the routes' devices.
    let index: HashMap<String, u32> = nl
        .links(&LinkFilter::default())
        .unwrap()
        .into_iter()
        .map(|l| (l.ifname, l.ifindex))
        .collect();
    for (family, f) in [("-4", IpFamily::V4), ("-6", IpFamily::V6)] {
        // The IPv6 link-local route comes with the link-local address.
        matches_ip(
            || nl.routes(Some(f), Some(u32::from(RT_TABLE_MAIN))).unwrap(),
            || ns.ip_json(&[family, "route", "show", "table", "main"]),
            |theirs, ours: &Vec<Route>| route_diffs(theirs, ours, f, &index),
            |a, b| a == b,
            family,
        );
    }
    let mine = nl.routes(None, Some(u32::from(RT_TABLE_MAIN))).unwrap();
    let added = mine.iter().filter(|r| r.protocol == RTPROT_BOOT).count();
    assert_eq!(added, 3);

    // Refusals with hints.
    let e = nl.add_route(&r4).unwrap_err();
    assert_eq!(
        (e.code(), os_error(&e).syscall),
        ("EEXIST", "netlink(RTM_NEWROUTE)")
    );
    let e = nl.add_address(vb0, ip("10.20.0.1"), 24).unwrap_err();
    assert_eq!(
        (e.code(), os_error(&e).syscall),
        ("EEXIST", "netlink(RTM_NEWADDR)")
    );
    // The kernel explains (extended ack) where it can.
    assert!(os_error(&e).hint.is_some(), "{e}");
    let e = nl
        .add_route(&RouteSpec::device(ip("10.30.0.1"), 16, vb0))
        .unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    assert!(os_error(&e).hint.is_some(), "{e}");

    for r in [&r4, &r6, &via] {
        nl.delete_route(r).unwrap();
    }
    let e = nl.delete_route(&r4).unwrap_err();
    assert_eq!(e.code(), "ESRCH");
    nl.delete_address(vb0, ip("10.20.0.1"), 24).unwrap();
    nl.delete_address(vb0, ip("2001:db8:20::1"), 64).unwrap();
    let e = nl.delete_address(vb0, ip("10.20.0.1"), 24).unwrap_err();
    assert_eq!(e.code(), "EADDRNOTAVAIL");
    assert!(
        ns.ip_json(&["-4", "addr", "show", "dev", "vb0"])
            .arr()
            .is_empty()
            || ns.ip_json(&["-4", "addr", "show", "dev", "vb0"]).arr()[0]
                .get("addr_info")
                .unwrap()
                .arr()
                .is_empty()
    );
    let left: Vec<_> = nl
        .routes(None, Some(u32::from(RT_TABLE_MAIN)))
        .unwrap()
        .into_iter()
        .filter(|r| r.protocol == RTPROT_BOOT)
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn a_socket_stays_in_its_namespace() {
    let a = Netns::new("nsa");
    let b = Netns::new("nsb");
    a.ip(&["tuntap", "add", "dev", "only-a", "mode", "tap"]);
    let mut in_a = netlink(&a);
    let mut in_b = netlink(&b);
    // Used from this thread, each socket still answers for its namespace.
    assert!(in_a.link(LinkRef::Name("only-a")).unwrap().is_some());
    assert!(in_b.link(LinkRef::Name("only-a")).unwrap().is_none());
    let names: Vec<_> = in_b
        .links(&LinkFilter::default())
        .unwrap()
        .into_iter()
        .map(|l| l.ifname)
        .collect();
    assert_eq!(names, ["lo"]);
}
