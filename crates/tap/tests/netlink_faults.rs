//! Fault injection for netlink: run a sequence of netlink operations, fail
//! its k-th Sys call (each socket, each send, each receive) for every k, and
//! check the error that comes back and that no fd is left open.
//!
//! One #[test] in its own binary, so nothing else opens fds meanwhile and
//! /proc/self/fd can be counted. Needs root; works in a namespace of its own.

mod support;

use std::net::IpAddr;

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::netlink::*;
use vmtap_core::sys::Call;
use vmtap_core::{Error, RealSys, Result, Sys};

use support::{fd_count, Netns};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

struct Indexes {
    vb0: u32,
    br0: u32,
    tp0: u32,
}

/// What the library will do: list, create a macvtap and configure it, make
/// a tap a bridge port with flags, addresses and routes, read back, undo.
fn sequence(sys: &dyn Sys, ix: &Indexes) -> Result<()> {
    let mut nl = Netlink::open(sys)?;
    let links = nl.links(&LinkFilter::default())?;
    assert!(links.len() >= 5);
    let spec = MacvtapSpec {
        name: Some("mvf0".into()),
        lower: ix.vb0,
        ..Default::default()
    };
    let m = nl.create_macvtap(&spec)?;
    let change = LinkChange {
        alias: Some("fault".into()),
        mtu: Some(1400),
        up: Some(true),
        ..Default::default()
    };
    nl.set_link(m.ifindex, &change)?;
    assert!(nl.link(LinkRef::Index(m.ifindex))?.is_some());
    let attach = LinkChange {
        master: Some(ix.br0),
        ..Default::default()
    };
    nl.set_link(ix.tp0, &attach)?;
    let flags = BridgePort {
        isolated: Some(true),
        learning: Some(false),
        ..Default::default()
    };
    nl.set_bridge_port(ix.tp0, &flags)?;
    assert_eq!(nl.bridge_ports()?.len(), 1);
    nl.add_address(ix.vb0, ip("10.50.0.1"), 24)?;
    nl.add_address(ix.vb0, ip("2001:db8:50::1"), 64)?;
    let route = RouteSpec::device(ip("10.60.0.0"), 16, ix.vb0);
    nl.add_route(&route)?;
    assert!(!nl.routes(None, Some(u32::from(RT_TABLE_MAIN)))?.is_empty());
    assert!(nl.addresses(None, Some(ix.vb0))?.len() >= 2);
    nl.delete_route(&route)?;
    nl.delete_address(ix.vb0, ip("10.50.0.1"), 24)?;
    nl.delete_address(ix.vb0, ip("2001:db8:50::1"), 64)?;
    let detach = LinkChange {
        master: Some(0),
        ..Default::default()
    };
    nl.set_link(ix.tp0, &detach)?;
    nl.delete_link(m.ifindex)?;
    Ok(())
}

/// Undo whatever a failed sequence left.
fn reset(ns: &Netns) {
    let _ = std::process::Command::new("ip")
        .args(["-n", &ns.name, "link", "del", "mvf0"])
        .stderr(std::process::Stdio::null())
        .status();
    ns.ip(&["link", "set", "tp0", "nomaster"]);
    ns.ip(&["addr", "flush", "dev", "vb0", "scope", "global"]);
    let _ = std::process::Command::new("ip")
        .args(["-n", &ns.name, "route", "del", "10.60.0.0/16"])
        .stderr(std::process::Stdio::null())
        .status();
}

fn label(call: &Call) -> &'static str {
    match call {
        Call::NetlinkSocket | Call::Socket => "socket",
        Call::NetlinkSend(l) | Call::NetlinkRecv(l) | Call::Ioctl(l) => l,
        Call::Open(_) => "open",
        Call::ReadFrame => "read",
        Call::WriteFrame => "write",
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn every_failing_netlink_call_is_reported_and_leaks_nothing() {
    let ns = Netns::new("fault");
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    ns.ip(&["tuntap", "add", "dev", "tp0", "mode", "tap"]);
    ns.ip(&["link", "set", "vb0", "up"]);
    let ix = ns.enter(|| {
        let mut nl = Netlink::open(&RealSys).unwrap();
        let links = nl.links(&LinkFilter::default()).unwrap();
        let of = |n: &str| links.iter().find(|l| l.ifname == n).unwrap().ifindex;
        Indexes {
            vb0: of("vb0"),
            br0: of("br0"),
            tp0: of("tp0"),
        }
    });

    ns.enter(|| {
        let clean = FaultSys::new(RealSys, 0, Errno::EIO);
        sequence(&clean, &ix).unwrap();
        let calls = clean.calls();
        let total = calls.len();
        assert_eq!(calls[0], Call::NetlinkSocket);
        assert!(calls.iter().all(|c| matches!(
            c,
            Call::NetlinkSocket | Call::NetlinkSend(_) | Call::NetlinkRecv(_)
        )));
        let fds = fd_count();

        // EIO anywhere: that error, naming the failed request.
        for k in 1..=total {
            let sys = FaultSys::new(RealSys, k, Errno::EIO);
            let result = sequence(&sys, &ix);
            let call = sys.failed_call().unwrap();
            let e = result.expect_err(&format!("k={k} ({call:?}) did not fail"));
            match &e {
                Error::Os(os) => {
                    assert_eq!(os.errno, Errno::EIO, "k={k} ({call:?}): {e}");
                    assert_eq!(os.syscall, label(&call), "k={k}: {e}");
                }
                other => panic!("k={k}: {other:?}"),
            }
            assert_eq!(fd_count(), fds, "k={k} ({call:?}): an fd leaked");
            reset(&ns);
        }

        // ENOBUFS: a dump or get starts over on a new socket and succeeds;
        // a change is never sent twice, so it fails.
        let (mut recovered, mut failed) = (0, 0);
        for k in 1..=total {
            let sys = FaultSys::new(RealSys, k, Errno::ENOBUFS);
            let result = sequence(&sys, &ix);
            let call = sys.failed_call().unwrap();
            let idempotent = matches!(
                call,
                Call::NetlinkRecv(l) if l.starts_with("netlink(RTM_GET")
            );
            match result {
                Ok(()) => {
                    assert!(
                        idempotent,
                        "k={k}: {call:?} failed but the sequence went on"
                    );
                    // The restart opened one more socket and sent the request again.
                    let calls = sys.calls();
                    assert!(calls.len() > total, "k={k}");
                    assert_eq!(calls[k], Call::NetlinkSocket, "k={k}");
                    recovered += 1;
                }
                Err(e) => {
                    assert!(!idempotent, "k={k}: {call:?} was not retried: {e}");
                    assert_eq!(e.errno(), Some(Errno::ENOBUFS), "k={k}: {e}");
                    failed += 1;
                }
            }
            assert_eq!(fd_count(), fds, "k={k} ({call:?}): an fd leaked");
            reset(&ns);
        }
        eprintln!(
            "netlink faults: {total} calls; ENOBUFS: {recovered} recovered, {failed} reported"
        );
        assert!(recovered > 0 && failed > 0);
    });
}
