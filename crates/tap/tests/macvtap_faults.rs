//! Fault injection for open_macvtap: fail its k-th syscall (every netlink
//! message, the uevent socket and its receives, stat, mkdtemp, mknod, each
//! open and fstat, unlink, rmdir, the ioctls, setns), for every k, and check
//! that the error names that call and that nothing is left: no fd, no link,
//! no device node or directory, no thread, and the calling thread's network
//! namespace unchanged. Then the same for closing a macvtap (its RTM_DELLINK).
//!
//! One #[test] in its own binary, so nothing else opens fds meanwhile and
//! /proc/self/fd can be counted. Needs root; works in namespaces of its own.
//! vhost-net may be absent, so the vhost cases open /dev/null as a stand-in.

mod support;

use std::ffi::CString;
use std::fs;

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::netlink::MacvlanMode;
use vmtap_core::netns::NetNsSpec;
use vmtap_core::sys::Call;
use vmtap_core::{open_macvtap, Error, MacvtapOptions, RealSys, Tristate};

use support::{fd_count, Netns};

const INJECTED: Errno = Errno::EIO;

fn thread_count() -> usize {
    fs::read_dir("/proc/self/task").unwrap().count()
}

fn thread_netns() -> std::path::PathBuf {
    fs::read_link("/proc/thread-self/ns/net").unwrap()
}

/// The macvtaps of the namespace.
fn macvtaps(ns: &Netns) -> Vec<String> {
    ns.ip_json(&["link", "show", "type", "macvtap"])
        .arr()
        .iter()
        .filter_map(|l| l.str("ifname").map(str::to_owned))
        .collect()
}

/// What a directory holds.
fn entries(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The private directories this run made: the parents of the nodes it
/// asked for (a successful mkdtemp is always followed by its mknod, which
/// is recorded even when it is the call that fails).
fn made_dirs(sys: &FaultSys<RealSys>) -> Vec<String> {
    sys.calls()
        .iter()
        .filter_map(|c| match c {
            Call::Mknod(path) => std::path::Path::new(path)
                .parent()
                .map(|d| d.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Of the directories this run made, those still there. /dev is shared with
/// every process of the machine (another vmtap makes its own `.vmtap-*`
/// there), so only this run's own are looked for.
fn left_dirs(sys: &FaultSys<RealSys>) -> Vec<String> {
    made_dirs(sys)
        .into_iter()
        .filter(|d| fs::symlink_metadata(d).is_ok())
        .collect()
}

struct Case {
    label: &'static str,
    opts: MacvtapOptions,
    /// Run from a thread inside the namespace (no `netns` option).
    from_inside: bool,
}

fn cases(ns: &Netns, private_dir: &str) -> Vec<Case> {
    let in_ns = || Some(NetNsSpec::Path(ns.name.clone()));
    let private = CString::new(private_dir).unwrap();
    vec![
        Case {
            label: "2 queues, /dev, in a namespace",
            opts: MacvtapOptions {
                link: "vb0".into(),
                queues: 2,
                vnet_hdr: Tristate::On,
                up: true,
                netns: in_ns(),
                ..MacvtapOptions::default()
            },
            from_inside: false,
        },
        Case {
            label: "vmtap's own node, configured, persistent, vhost",
            opts: MacvtapOptions {
                link: "vb0".into(),
                name: "mvf0".into(),
                mode: MacvlanMode::Vepa,
                mac: Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                mtu: Some(1400),
                queues: 3,
                vnet_hdr: Tristate::Off,
                vhost: Tristate::On,
                vhost_path: CString::new("/dev/null").unwrap(),
                up: true,
                persist: true,
                tag: Some("faults".into()),
                netns: in_ns(),
                dev_dir: private.clone(),
            },
            from_inside: false,
        },
        Case {
            label: "template, vhost auto, from inside",
            opts: MacvtapOptions {
                link: "vb0".into(),
                name: "mvt%d".into(),
                queues: 2,
                vhost: Tristate::Auto,
                vhost_path: CString::new("/dev/null").unwrap(),
                dev_dir: private,
                ..MacvtapOptions::default()
            },
            from_inside: true,
        },
    ]
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns, mknod)"]
fn every_failing_syscall_of_open_macvtap_leaves_nothing() {
    let ns = Netns::new("mvflt");
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    ns.ip(&["link", "set", "vb0", "up"]);
    let private_dir = std::env::temp_dir().join(format!("vmtap-mvflt-{}", std::process::id()));
    fs::create_dir(&private_dir).unwrap();
    let private = private_dir.to_str().unwrap().to_owned();
    let result = std::panic::catch_unwind(|| run_all(&ns, &private));
    let _ = fs::remove_dir_all(&private_dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn run_all(ns: &Netns, private: &str) {
    let home = thread_netns();
    for case in cases(ns, private) {
        let run = |sys: &FaultSys<RealSys>| {
            if case.from_inside {
                ns.enter(|| open_macvtap(sys, &case.opts))
            } else {
                open_macvtap(sys, &case.opts)
            }
        };
        let clean = FaultSys::new(RealSys, 0, INJECTED);
        let tap = run(&clean).unwrap_or_else(|e| panic!("{}: clean open failed: {e}", case.label));
        let total = clean.calls().len();
        for call in [
            Call::UeventSocket,
            Call::UeventRecv,
            Call::Stat(String::new()),
        ] {
            assert!(
                clean
                    .calls()
                    .iter()
                    .any(|c| std::mem::discriminant(c) == std::mem::discriminant(&call)),
                "{}: no {call:?} in {:?}",
                case.label,
                clean.calls()
            );
        }
        if case.opts.dev_dir.to_bytes() != b"/dev" {
            for call in ["mkdtemp", "mknod", "unlink", "rmdir"] {
                assert!(
                    clean.calls().iter().any(|c| c.label() == call),
                    "{}: no {call}",
                    case.label
                );
            }
        }
        tap.set_persist(&RealSys, false).unwrap();
        tap.close().unwrap();
        assert_eq!(
            macvtaps(ns),
            Vec::<String>::new(),
            "{}: clean run left a link",
            case.label
        );
        assert_eq!(
            left_dirs(&clean),
            Vec::<String>::new(),
            "{}: clean run left a private directory",
            case.label
        );

        let fds = fd_count();
        let threads = thread_count();
        let dev_dir = case.opts.dev_dir.to_str().unwrap().to_owned();
        let (mut failed, mut survived) = (0, 0);
        // The node path can change between runs (each run's link has a new
        // ifindex, whose /dev node may be another namespace's): go on until
        // a run makes fewer calls than k.
        for k in 1.. {
            let sys = FaultSys::new(RealSys, k, INJECTED);
            let result = run(&sys);
            let Some(call) = sys.failed_call() else {
                let tap = result
                    .unwrap_or_else(|e| panic!("{} k={k}: nothing failed, yet {e}", case.label));
                tap.set_persist(&RealSys, false).unwrap();
                tap.close().unwrap();
                assert!(k > total, "{}: only {k} calls of {total}", case.label);
                break;
            };
            match result {
                Err(e) => {
                    failed += 1;
                    assert_eq!(
                        e.errno(),
                        Some(INJECTED),
                        "{} k={k} ({call:?}): {e}",
                        case.label
                    );
                    match &e {
                        Error::Os(os) => assert_eq!(
                            os.syscall,
                            call.label(),
                            "{} k={k}: the error names the failed call: {e}",
                            case.label
                        ),
                        other => panic!("{} k={k}: {other:?}", case.label),
                    }
                }
                Ok(tap) => {
                    // Only a vhost open under 'auto' may fail without failing the open.
                    survived += 1;
                    let optional = matches!(call, Call::Open(ref p) if p == "/dev/null")
                        && case.opts.vhost == Tristate::Auto;
                    assert!(
                        optional,
                        "{} k={k}: {call:?} failed but the open succeeded",
                        case.label
                    );
                    assert!(tap.vhost_fds().is_empty());
                    tap.close().unwrap();
                }
            }
            let what = format!("{} k={k} ({call:?})", case.label);
            assert_eq!(fd_count(), fds, "{what}: an fd leaked");
            assert_eq!(
                macvtaps(ns),
                Vec::<String>::new(),
                "{what}: a link survived"
            );
            if dev_dir != "/dev" {
                // The test's own directory: nothing at all may be left in it.
                assert_eq!(
                    entries(&dev_dir),
                    Vec::<String>::new(),
                    "{what}: a node or directory survived"
                );
            }
            assert_eq!(
                left_dirs(&sys),
                Vec::<String>::new(),
                "{what}: a private directory survived"
            );
            assert_eq!(thread_count(), threads, "{what}: a thread survived");
            assert_eq!(
                thread_netns(),
                home,
                "{what}: the calling thread changed namespace"
            );
        }
        eprintln!(
            "macvtap faults: {}: {total} syscalls, {failed} failures reported, {survived} optional",
            case.label
        );
        assert!(failed > 0);
    }
    close_faults(ns);
}

/// Closing: every call of the delete failed in turn; the error names it,
/// every fd is released, and the link is gone unless the request never
/// reached the kernel (then the error says how to delete it).
fn close_faults(ns: &Netns) {
    let opts = MacvtapOptions {
        link: "vb0".into(),
        name: "mvc0".into(),
        queues: 2,
        netns: Some(NetNsSpec::Path(ns.name.clone())),
        ..MacvtapOptions::default()
    };
    let fds = fd_count();
    let clean = FaultSys::new(RealSys, 0, INJECTED);
    open_macvtap(&RealSys, &opts)
        .unwrap()
        .close_with(&clean)
        .unwrap();
    let total = clean.calls().len();
    assert!(clean
        .calls()
        .contains(&Call::NetlinkSend("netlink(RTM_DELLINK)")));
    for k in 1..=total {
        let tap = open_macvtap(&RealSys, &opts).unwrap();
        let sys = FaultSys::new(RealSys, k, INJECTED);
        let e = tap.close_with(&sys).unwrap_err();
        let call = sys.failed_call().unwrap();
        match &e {
            Error::Os(os) => {
                assert_eq!(os.syscall, call.label(), "close k={k}: {e}");
                assert_eq!(os.ifname.as_deref(), Some("mvc0"));
            }
            other => panic!("close k={k}: {other:?}"),
        }
        assert_eq!(fd_count(), fds, "close k={k} ({call:?}): an fd leaked");
        let left = macvtaps(ns);
        if call == Call::NetlinkRecv("netlink(RTM_DELLINK)") {
            assert!(left.is_empty(), "close k={k}: the request was handled");
        } else {
            assert_eq!(left, vec!["mvc0".to_owned()], "close k={k} ({call:?})");
            assert!(e.to_string().contains("vmtap delete mvc0"), "{e}");
            ns.ip(&["link", "del", "mvc0"]);
        }
    }
}
