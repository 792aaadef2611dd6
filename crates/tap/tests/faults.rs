//! Fault injection: fail the k-th syscall of an open_tap, for every k, and
//! check that the right error comes back and that every fd opened so far is
//! closed and no device is left (a persistent one included).
//!
//! One #[test] in its own binary, so nothing else opens fds meanwhile and
//! /proc/self/fd can be counted. Needs root (real devices). vhost-net may
//! be absent, so the vhost cases open /dev/null as a stand-in device: what
//! is exercised is vmtap's bookkeeping of those fds.

use std::ffi::CString;
use std::fs;
use std::process::Command;

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::sys::consts::*;
use vmtap_core::sys::Call;
use vmtap_core::{open_tap, OpenOptions, RealSys, Tristate};

const PREFIX: &str = "vmtflt";
const INJECTED: Errno = Errno::EIO;

fn fd_count() -> usize {
    fs::read_dir("/proc/self/fd").unwrap().count()
}

fn our_links() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(PREFIX) && n != &format!("{PREFIX}br"))
        .collect();
    v.sort();
    v
}

fn ip(args: &[&str]) {
    let ok = Command::new("ip").args(args).status().unwrap().success();
    assert!(ok, "ip {args:?}");
}

struct Case {
    label: &'static str,
    opts: OpenOptions,
}

fn cases() -> Vec<Case> {
    let base = |queues: u32, vhost: bool| OpenOptions {
        name: format!("{PREFIX}%d"),
        queues,
        vnet_hdr: Tristate::On,
        vhost: if vhost { Tristate::On } else { Tristate::Off },
        vhost_path: CString::new("/dev/null").unwrap(),
        ..OpenOptions::default()
    };
    let mut v = Vec::new();
    for queues in [1, 4, 256] {
        for vhost in [false, true] {
            v.push(Case {
                label: if vhost { "with vhost" } else { "without vhost" },
                opts: base(queues, vhost),
            });
        }
    }
    // 'auto' vhost: a failing vhost open is not an error, but nothing may leak.
    v.push(Case {
        label: "vhost auto",
        opts: OpenOptions {
            vhost: Tristate::Auto,
            ..base(4, true)
        },
    });
    // Every configuration step, on an exact name (so the existence check
    // runs too), made persistent: a failure must not leave it behind.
    v.push(Case {
        label: "configured + persistent",
        opts: OpenOptions {
            name: format!("{PREFIX}c0"),
            persist: true,
            owner: Some(65534),
            group: Some(65534),
            vnet_hdr_size: Some(12),
            offloads: Some(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_USO4 | TUN_F_USO6),
            mtu: Some(9000),
            mac: Some([0xfe, 0x54, 0, 0x12, 0x34, 0x56]),
            bridge: Some(format!("{PREFIX}br")),
            up: true,
            ..base(4, true)
        },
    });
    // vmtap's own name counter (existence checks, exclusive create).
    v.push(Case {
        label: "unique name",
        opts: OpenOptions {
            unique_name: true,
            ..base(2, false)
        },
    });
    v
}

fn syscall_label(call: &Call) -> &'static str {
    match call {
        Call::Open(_) => "open",
        Call::Socket | Call::NetlinkSocket => "socket",
        Call::Ioctl(name) | Call::NetlinkSend(name) | Call::NetlinkRecv(name) => name,
        Call::ReadFrame => "read",
        Call::WriteFrame => "write",
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn every_failing_syscall_of_open_tap_leaves_nothing() {
    ip(&["link", "add", &format!("{PREFIX}br"), "type", "bridge"]);
    let result = std::panic::catch_unwind(run_all);
    ip(&["link", "del", &format!("{PREFIX}br")]);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn run_all() {
    for case in cases() {
        let q = case.opts.queues;
        // A clean run tells how many syscalls an open makes.
        let counting = FaultSys::new(RealSys, 0, INJECTED);
        let tap = open_tap(&counting, &case.opts)
            .unwrap_or_else(|e| panic!("{} q={q}: clean open failed: {e}", case.label));
        let total = counting.calls().len();
        if case.opts.persist {
            tap.set_persist(&RealSys, false).unwrap();
        }
        tap.close().unwrap();
        assert_eq!(
            our_links(),
            Vec::<String>::new(),
            "{}: clean run left a device",
            case.label
        );

        let fds = fd_count();
        let (mut failed, mut survived) = (0, 0);
        for k in 1..=total {
            let sys = FaultSys::new(RealSys, k, INJECTED);
            let result = open_tap(&sys, &case.opts);
            let call = sys.failed_call().expect("the k-th call happened");
            match result {
                Err(e) => {
                    failed += 1;
                    assert_eq!(
                        e.errno(),
                        Some(INJECTED),
                        "{} q={q} k={k} ({call:?}): {e}",
                        case.label
                    );
                    match &e {
                        vmtap_core::Error::Os(os) => assert_eq!(
                            os.syscall,
                            syscall_label(&call),
                            "{} q={q} k={k}: error names the failed call",
                            case.label
                        ),
                        other => panic!("{} q={q} k={k}: {other:?}", case.label),
                    }
                }
                Ok(tap) => {
                    // Only optional steps may fail without failing the open:
                    // a vhost open under 'auto', or a look-up for a hint.
                    survived += 1;
                    let optional = matches!(call, Call::Open(ref p) if p == "/dev/null")
                        && case.opts.vhost == Tristate::Auto
                        || call == Call::Socket
                        || call == Call::Ioctl("ioctl(SIOCGIFINDEX)");
                    assert!(
                        optional,
                        "{} q={q} k={k}: {call:?} failed but open_tap succeeded",
                        case.label
                    );
                    assert_eq!(tap.tap_fds().len(), q as usize);
                    if case.opts.persist {
                        tap.set_persist(&RealSys, false).unwrap();
                    }
                    tap.close().unwrap();
                }
            }
            assert_eq!(
                fd_count(),
                fds,
                "{} q={q} k={k} ({call:?}): an fd leaked",
                case.label
            );
            assert_eq!(
                our_links(),
                Vec::<String>::new(),
                "{} q={q} k={k} ({call:?}): a device survived",
                case.label
            );
        }
        eprintln!(
            "faults: {} q={q}: {total} syscalls, {failed} failures reported, {survived} optional",
            case.label
        );
        assert!(failed > 0);
    }
}
