//! Fault injection for list_taps, tap_holders, get_stats, set_tag, the
//! EBUSY error's holders and gc_taps: run each, fail its k-th Sys call
//! (socket, ioctl, netlink send/receive, /proc read) for every k, and check
//! the error that comes back, that no fd is left open, and that gc never
//! removes what it must not nor leaves a device half-collected.
//!
//! One #[test] in its own binary, so nothing else opens fds meanwhile and
//! /proc/self/fd can be counted. Needs root; works in a namespace of its
//! own. The /proc walk is limited to this process ([`OnlyMe`]), so that k
//! runs over a few dozen calls rather than every fd of the machine.

mod support;

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::gc::{gc_taps, GcOptions};
use vmtap_core::sys::consts::*;
use vmtap_core::sys::{Call, Ioctl};
use vmtap_core::{list_taps, open_tap, tap_holders, Error, OpenOptions, RealSys, Sys, Tristate};

use support::{fd_count, Netns};

/// RealSys, with `/proc` listing this process only.
struct OnlyMe;

impl Sys for OnlyMe {
    fn open(&self, path: &CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
        RealSys.open(path, flags)
    }
    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        RealSys.control_socket()
    }
    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        RealSys.ioctl(fd, op)
    }
    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        RealSys.netlink_socket()
    }
    fn netlink_send(&self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        RealSys.netlink_send(fd, msg)
    }
    fn netlink_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        RealSys.netlink_recv(fd, buf)
    }
    fn read_dir(&self, p: &CStr) -> Result<Vec<String>, Errno> {
        let all = RealSys.read_dir(p)?;
        if p.to_bytes() != b"/proc" {
            return Ok(all);
        }
        let me = std::process::id().to_string();
        Ok(all.into_iter().filter(|n| *n == me).collect())
    }
    fn read_link(&self, p: &CStr) -> Result<Vec<u8>, Errno> {
        RealSys.read_link(p)
    }
    fn read_file(&self, p: &CStr) -> Result<Vec<u8>, Errno> {
        RealSys.read_file(p)
    }
}

const INJECTED: Errno = Errno::EIO;

fn is_proc(call: &Call) -> bool {
    matches!(
        call,
        Call::ReadDir(_) | Call::ReadLink(_) | Call::ReadFile(_)
    )
}

fn os(e: &Error) -> &vmtap_core::OsError {
    match e {
        Error::Os(os) => os,
        other => panic!("not a kernel error: {other:?}"),
    }
}

/// The read-only operations and tag changes, on an open device.
fn reads(sys: &dyn Sys, ns: &Netns) -> Result<(), Error> {
    let opts = OpenOptions {
        name: "fst0".into(),
        vnet_hdr: Tristate::Off,
        ..OpenOptions::default()
    };
    let tap = ns.enter(|| open_tap(&RealSys, &opts)).unwrap();
    let result = ns.enter(|| -> Result<(), Error> {
        assert!(list_taps(sys, None)?.len() >= 2);
        assert_eq!(tap_holders(sys, "fsq0")?.len(), 1);
        tap.get_stats(sys)?;
        tap.set_tag(sys, Some("fault-1"))?;
        tap.set_tag(sys, None)?;
        Ok(())
    });
    tap.close().unwrap();
    result
}

fn all_tun(ns: &Netns) -> Vec<String> {
    let mut v: Vec<String> = ns
        .ip_json(&["link", "show", "type", "tun"])
        .arr()
        .iter()
        .map(|j| j.str("ifname").unwrap().to_owned())
        .collect();
    v.sort();
    v
}

const GC_DEVICES: [(&str, bool, Option<&str>); 6] = [
    ("gfree0", false, Some("t")),
    ("gfreem0", true, Some("t")),
    ("gheld0", false, Some("t")),
    ("gheldm0", true, Some("t")),
    ("guntag0", false, None),
    ("gother0", false, Some("u")),
];

/// The gc's world: tagged/untagged, held/unheld, single/multi-queue. Returns
/// the fds holding gheld0 and gheldm0.
fn gc_setup(ns: &Netns) -> Vec<OwnedFd> {
    for (dev, mq, tag) in GC_DEVICES {
        let mut args = vec!["tuntap", "add", "dev", dev, "mode", "tap"];
        if mq {
            args.push("multi_queue");
        }
        ns.ip(&args);
        if let Some(t) = tag {
            ns.ip(&["link", "set", dev, "alias", &format!("vmtap:tag={t}")]);
        }
    }
    vec![
        ns.hold("gheld0", IFF_TAP | IFF_NO_PI, 1).pop().unwrap(),
        ns.hold("gheldm0", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, 1)
            .pop()
            .unwrap(),
    ]
}

fn gc_reset(ns: &Netns, held: Vec<OwnedFd>) {
    drop(held);
    for dev in all_tun(ns) {
        if dev.starts_with('g') {
            ns.ip(&["link", "del", &dev]);
        }
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn every_failing_call_is_reported_and_leaks_nothing() {
    let ns = Netns::new("invflt");
    ns.ip(&["tuntap", "add", "dev", "fp0", "mode", "tap"]);
    let held = ns.hold("fsq0", IFF_TAP | IFF_NO_PI, 1).pop().unwrap();
    let me = std::process::id();

    // 1. Reads and tags: every failure is that error, naming the call.
    let clean = FaultSys::new(OnlyMe, 0, INJECTED);
    reads(&clean, &ns).unwrap();
    let total = clean.calls().len();
    assert!(clean.calls().iter().any(is_proc));
    let fds = fd_count();
    for k in 1..=total {
        let sys = FaultSys::new(OnlyMe, k, INJECTED);
        let e = reads(&sys, &ns).expect_err(&format!("k={k} did not fail"));
        let call = sys.failed_call().unwrap();
        assert_eq!(
            (os(&e).errno, os(&e).syscall),
            (INJECTED, call.label()),
            "k={k} ({call:?}): {e}"
        );
        if is_proc(&call) {
            assert!(
                os(&e)
                    .path
                    .as_deref()
                    .is_some_and(|p| p.starts_with("/proc")),
                "{e}"
            );
        }
        assert_eq!(fd_count(), fds, "k={k} ({call:?}): an fd leaked");
    }
    eprintln!("inventory faults: reads and tags: {total} calls");

    // 2. EBUSY on a held device: whatever fails in explaining it, the
    // error stays EBUSY; the holders are there unless the walk failed.
    let busy = OpenOptions {
        name: "fsq0".into(),
        vnet_hdr: Tristate::Off,
        ..OpenOptions::default()
    };
    let clean = FaultSys::new(OnlyMe, 0, INJECTED);
    let e = ns.enter(|| open_tap(&clean, &busy)).unwrap_err();
    assert_eq!(os(&e).errno, Errno::EBUSY);
    assert_eq!(os(&e).holders.len(), 1);
    assert_eq!(
        (os(&e).holders[0].pid, &os(&e).holders[0].fds),
        (me, &vec![held.as_raw_fd()])
    );
    let calls = clean.calls();
    let setiff = calls
        .iter()
        .position(|c| *c == Call::Ioctl("ioctl(TUNSETIFF)"))
        .unwrap();
    let (mut busy_kept, mut lost_holders) = (0, 0);
    for k in 1..=calls.len() {
        let sys = FaultSys::new(OnlyMe, k, INJECTED);
        let e = ns.enter(|| open_tap(&sys, &busy)).unwrap_err();
        let call = sys.failed_call().unwrap();
        let o = os(&e);
        if o.errno == INJECTED {
            assert!(k <= setiff + 1, "k={k} ({call:?}): {e}");
            assert_eq!(o.syscall, call.label(), "k={k}");
        } else {
            assert_eq!(o.errno, Errno::EBUSY, "k={k} ({call:?}): {e}");
            busy_kept += 1;
            if o.holders.is_empty() {
                lost_holders += 1;
                assert!(
                    k > setiff,
                    "k={k} ({call:?}): holders lost before the attach"
                );
            } else {
                assert_eq!(o.holders[0].pid, me);
                assert!(!is_proc(&call), "k={k}: a failed walk has no holders");
            }
        }
        assert_eq!(fd_count(), fds, "k={k} ({call:?}): an fd leaked");
    }
    eprintln!(
        "inventory faults: EBUSY: {} calls, EBUSY kept {busy_kept} times, holders lost {lost_holders}",
        calls.len()
    );
    assert!(lost_holders > 0);

    // 3. gc: a failure fails the whole call only while listing; later it is
    // that device's failure, and the others are still collected. Never is a
    // held or untagged device removed, nor a kept one left not persistent.
    let opts = GcOptions {
        tag: Some("t".into()),
        ..GcOptions::default()
    };
    let fixed = ["fp0"];
    let held_gc = gc_setup(&ns);
    let clean = FaultSys::new(OnlyMe, 0, INJECTED);
    let r = ns.enter(|| gc_taps(&clean, &opts)).unwrap();
    assert_eq!(r.removed.len(), 2);
    assert_eq!(r.kept.iter().map(|(_, h)| h.len()).sum::<usize>(), 2);
    let total = clean.calls().len();
    gc_reset(&ns, held_gc);
    let fds = fd_count();
    let (mut whole, mut per_device, mut survived) = (0, 0, 0);
    for k in 1..=total {
        let held_gc = gc_setup(&ns);
        let before = fd_count();
        let sys = FaultSys::new(OnlyMe, k, INJECTED);
        let result = ns.enter(|| gc_taps(&sys, &opts));
        let call = sys.failed_call().unwrap();
        let now = ns.persistent_taps();
        for must in ["gheld0", "gheldm0", "guntag0", "gother0", "fp0"] {
            assert!(
                now.contains(&must.to_owned()),
                "k={k} ({call:?}): {must} was removed"
            );
        }
        // Only devices that were there, and each either removed or persistent.
        let mut expected: Vec<String> = GC_DEVICES.iter().map(|d| d.0.to_owned()).collect();
        expected.extend(fixed.iter().map(|s| s.to_string()));
        expected.push("fsq0".into());
        for dev in all_tun(&ns) {
            assert!(
                expected.contains(&dev),
                "k={k} ({call:?}): stray device {dev}"
            );
            assert!(
                now.contains(&dev) || dev == "fsq0",
                "k={k} ({call:?}): {dev} left without persistence"
            );
        }
        match result {
            Err(e) => {
                whole += 1;
                assert_eq!(
                    (os(&e).errno, os(&e).syscall),
                    (INJECTED, call.label()),
                    "k={k}"
                );
                assert!(call.label().starts_with("netlink") || call.label() == "socket");
            }
            Ok(r) => {
                for e in &r.removed {
                    assert!(
                        !now.contains(&e.ifname),
                        "k={k}: {} reported removed",
                        e.ifname
                    );
                }
                let kept: Vec<&str> = r.kept.iter().map(|(e, _)| e.ifname.as_str()).collect();
                assert_eq!(kept, ["gheld0", "gheldm0"], "k={k}");
                match r.failed.as_slice() {
                    [] => {
                        // Only the walk for the report may fail quietly.
                        assert!(is_proc(&call), "k={k}: {call:?} failed unnoticed");
                        assert!(r.kept.iter().all(|(_, h)| h.is_empty()), "k={k}");
                        survived += 1;
                    }
                    [(entry, e)] => {
                        per_device += 1;
                        assert_eq!(os(e).errno, INJECTED, "k={k}: {e}");
                        assert_eq!(os(e).syscall, call.label(), "k={k}: {e}");
                        let unchecked = os(e).hint.as_deref().is_some_and(|h| {
                            h.ends_with("that could not be checked") && entry.ifname == "gfreem0"
                        });
                        assert!(
                            now.contains(&entry.ifname) || unchecked,
                            "k={k}: failed but removed: {e}"
                        );
                        assert_eq!(
                            r.removed.len(),
                            1,
                            "k={k}: the other one is still collected"
                        );
                    }
                    more => panic!("k={k}: {more:?}"),
                }
            }
        }
        assert_eq!(fd_count(), before, "k={k} ({call:?}): an fd leaked");
        gc_reset(&ns, held_gc);
    }
    assert_eq!(fd_count(), fds);
    eprintln!(
        "inventory faults: gc: {total} calls; {whole} failed the call, {per_device} one device, \
         {survived} only the holders in the report"
    );
    assert!(whole > 0 && per_device > 0 && survived > 0);
    drop(held);
}
