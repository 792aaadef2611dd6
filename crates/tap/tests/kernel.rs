//! open_tap against the real kernel. Needs root (CAP_NET_ADMIN and
//! /dev/net/tun): ignored unless run with `--include-ignored`, which
//! `scripts/test-rust.mjs` adds as root.

use std::fs;
use std::os::fd::AsRawFd;

use vmtap_core::sys::consts::*;
use vmtap_core::{get_tun_features, open_tap, probe_features, OpenOptions, RealSys, Tristate};

fn tun_flags(name: &str) -> u16 {
    let s = fs::read_to_string(format!("/sys/class/net/{name}/tun_flags")).unwrap();
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).unwrap()
}

fn exists(name: &str) -> bool {
    fs::metadata(format!("/sys/class/net/{name}")).is_ok()
}

fn iff_of(fd: i32) -> Option<String> {
    let info = fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("iff:").map(|s| s.trim().to_owned()))
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn opens_a_kernel_named_tap_and_closing_removes_it() {
    let tap = open_tap(&RealSys, &OpenOptions::default()).unwrap();
    let name = tap.ifname().to_owned();
    assert!(name.starts_with("tap"), "{name}");
    assert_eq!(tap.tap_fds().len(), 1);
    assert!(tap.vnet_hdr());
    assert_eq!(tun_flags(&name), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    assert_eq!(
        get_tun_features(&RealSys, tap.control_fd()),
        Some(tap.features())
    );
    assert_eq!(tap.close().unwrap(), 1);
    assert!(!exists(&name));
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn opens_every_queue_on_one_multi_queue_device() {
    let opts = OpenOptions {
        name: "vmtcoremq%d".into(),
        queues: 8,
        vnet_hdr: Tristate::Off,
        ..OpenOptions::default()
    };
    let tap = open_tap(&RealSys, &opts).unwrap();
    assert!(tap.multi_queue());
    assert!(!tap.vnet_hdr());
    assert_eq!(
        tun_flags(tap.ifname()),
        IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE
    );
    for fd in tap.tap_fds() {
        assert_eq!(iff_of(fd.as_raw_fd()).as_deref(), Some(tap.ifname()));
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn a_held_single_queue_name_is_ebusy_with_a_hint() {
    let opts = OpenOptions {
        name: "vmtcorebusy".into(),
        ..OpenOptions::default()
    };
    let held = open_tap(&RealSys, &opts).unwrap();
    let err = open_tap(&RealSys, &opts).unwrap_err();
    assert_eq!(err.code(), "EBUSY");
    assert!(err.to_string().contains("already attached"), "{err}");
    drop(held);
    assert!(!exists("vmtcorebusy"));
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn probe_reports_tap_vnet_hdr_and_multi_queue() {
    let f = probe_features(&RealSys, c"/dev/net/tun", c"/nonexistent/vhost-net", None).unwrap();
    assert!(f.has(IFF_TAP) && f.has(IFF_NO_PI) && f.has(IFF_VNET_HDR) && f.has(IFF_MULTI_QUEUE));
    assert!(!f.vhost_net);
    let missing = probe_features(
        &RealSys,
        c"/nonexistent/tun",
        c"/nonexistent/vhost-net",
        None,
    )
    .unwrap();
    assert_eq!(missing.raw, None);
}
