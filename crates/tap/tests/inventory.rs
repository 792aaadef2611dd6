//! list_taps, tap_holders, tags, get_stats and gc_taps against the kernel,
//! each test in a network namespace of its own, compared with `ip -j`.
//! Needs root (ignored otherwise; scripts/test-rust.mjs includes them as
//! root). Device names differ between tests: the holders walk sees this
//! whole process, whose threads hold devices in several namespaces. The
//! tests that look at holders go further: the walk sees every process of the
//! machine, in any namespace, so their names carry this process's id
//! ([`dev`]) and another copy of the suite running meanwhile holds none of
//! them.
//!
//! The tests take turns ([`serial`]): reading `/proc/<pid>/fdinfo/<fd>`
//! holds a reference to that file for a moment, and a close() racing with
//! it leaves the last release (and so the teardown of a device) to the
//! reader. A holders walk in one test would make another test's close
//! asynchronous.

mod support;

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::errno::Errno;
use vmtap_core::gc::{gc_taps, GcOptions};
use vmtap_core::inventory::{list_taps, TapInfo};
use vmtap_core::link::format_mac;
use vmtap_core::sys::consts::*;
use vmtap_core::sys::{IfReq, Ioctl};
use vmtap_core::{open_tap, tap_holders, Error, OpenOptions, RealSys, Sys, Tristate};

use support::Netns;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time (see the module docs).
fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// `base` made this run's own: `i<pid><base>` (at most 1 + 7 + 7 bytes for a
/// `base` of 7). The holders walk matches device names machine-wide.
fn dev(base: &str) -> String {
    let name = format!("i{}{base}", std::process::id());
    assert!(name.len() < libc::IFNAMSIZ, "{name} is too long");
    name
}

fn detach_queue(fd: &OwnedFd) {
    let mut req = IfReq::with_name_flags("", IFF_DETACH_QUEUE);
    RealSys
        .ioctl(fd.as_fd(), &mut Ioctl::TunSetQueue(&mut req))
        .unwrap();
}

fn raw_fds(fds: &[OwnedFd]) -> Vec<i32> {
    let mut v: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    v.sort_unstable();
    v
}

fn by_name(taps: &[TapInfo]) -> HashMap<&str, &TapInfo> {
    taps.iter().map(|t| (t.ifname.as_str(), t)).collect()
}

/// list_taps against `ip -d -j link show type tun`, field by field; `queues`
/// of single-queue devices (ip shows none) from `held_sq`.
fn compare_with_ip(ns: &Netns, taps: &[TapInfo], held_sq: &[&str]) {
    let theirs = ns.ip_json(&["-d", "link", "show", "type", "tun"]);
    assert_eq!(theirs.arr().len(), taps.len(), "same devices");
    let ours = by_name(taps);
    for j in theirs.arr() {
        let n = j.str("ifname").unwrap();
        let t = ours[n];
        let d = j.get("linkinfo").and_then(|i| i.get("info_data")).unwrap();
        assert_eq!(j.num("ifindex"), Some(u64::from(t.ifindex)), "{n} ifindex");
        let ty = if t.tap { "tap" } else { "tun" };
        assert_eq!(d.str("type"), Some(ty), "{n} type");
        assert_eq!(d.bool("vnet_hdr"), Some(t.vnet_hdr), "{n} vnet_hdr");
        assert_eq!(d.bool("multi_queue"), Some(t.multi_queue), "{n} mq");
        assert_eq!(d.bool("persist"), Some(t.persist), "{n} persist");
        assert_eq!(d.bool("pi"), Some(t.pi), "{n} pi");
        assert_eq!(d.num("user"), t.owner.map(u64::from), "{n} owner");
        assert_eq!(d.num("group"), t.group.map(u64::from), "{n} group");
        if t.multi_queue {
            assert_eq!(d.num("numqueues"), Some(u64::from(t.queues)), "{n} queues");
            let disabled = Some(u64::from(t.disabled_queues));
            assert_eq!(d.num("numdisabled"), disabled, "{n} disabled");
        } else {
            let q = u32::from(held_sq.contains(&n));
            assert_eq!((t.queues, t.disabled_queues), (q, 0), "{n} queues");
        }
        assert_eq!(j.num("mtu"), Some(u64::from(t.mtu)), "{n} mtu");
        let mac = t.mac.map(|m| format_mac(&m));
        assert_eq!(j.str("address"), mac.as_deref(), "{n} mac");
        let up = j.strs("flags").contains(&"UP".to_owned());
        assert_eq!(up, t.up, "{n} up");
        assert_eq!(j.str("master"), t.master.as_deref(), "{n} master");
        let tag = j.str("ifalias").and_then(|a| a.strip_prefix("vmtap:tag="));
        let tag = tag.filter(|t| !t.is_empty() && !t.contains(' '));
        assert_eq!(tag, t.tag.as_deref(), "{n} tag");
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn list_taps_matches_ip() {
    let _serial = serial();
    let ns = Netns::new("list");
    assert!(ns.enter(|| list_taps(&RealSys, None)).unwrap().is_empty());
    ns.ip(&["link", "add", "lbr0", "type", "bridge"]);
    ns.ip(&[
        "link", "add", "lve0", "type", "veth", "peer", "name", "lve1",
    ]);
    // Persistent: plain, owned (ids without names: ip prints names), enslaved
    // and up with a tag, multi-queue with vnet_hdr, a tun with pi.
    ns.ip(&["tuntap", "add", "dev", "lp0", "mode", "tap"]);
    ns.ip(&[
        "tuntap", "add", "dev", "low0", "mode", "tap", "user", "4242", "group", "4343",
    ]);
    ns.ip(&["tuntap", "add", "dev", "lsl0", "mode", "tap", "vnet_hdr"]);
    ns.ip(&[
        "link",
        "set",
        "lsl0",
        "master",
        "lbr0",
        "mtu",
        "9000",
        "alias",
        "vmtap:tag=ci-7",
    ]);
    ns.ip(&["link", "set", "lsl0", "up"]);
    ns.ip(&[
        "tuntap",
        "add",
        "dev",
        "lpm0",
        "mode",
        "tap",
        "multi_queue",
        "vnet_hdr",
    ]);
    ns.ip(&["tuntap", "add", "dev", "ltn0", "mode", "tun", "pi"]);
    // A foreign alias and a malformed vmtap one are no tags.
    ns.ip(&["link", "set", "lp0", "alias", "uplink to the lab"]);
    ns.ip(&["link", "set", "low0", "alias", "vmtap:tag=a b"]);
    // Held: single-queue (vnet_hdr on, and off), a 4-queue device with one
    // queue disabled, a queue of the persistent multi-queue one.
    let _sq = ns.hold("lsq0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 1);
    let _nv = ns.hold("lnv0", IFF_TAP | IFF_NO_PI, 1);
    let mq = ns.hold(
        "lmq0",
        IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE,
        4,
    );
    detach_queue(&mq[3]);
    let _pm = ns.hold(
        "lpm0",
        IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE,
        2,
    );
    ns.ip(&["link", "set", "lsq0", "up"]);

    let taps = ns.enter(|| list_taps(&RealSys, None)).unwrap();
    let names: Vec<&str> = taps.iter().map(|t| t.ifname.as_str()).collect();
    assert_eq!(
        names,
        ["lp0", "low0", "lsl0", "lpm0", "ltn0", "lsq0", "lnv0", "lmq0"],
        "tun devices only, in ifindex order"
    );
    compare_with_ip(&ns, &taps, &["lsq0", "lnv0"]);
    let t = by_name(&taps);
    assert_eq!((t["lmq0"].queues, t["lmq0"].disabled_queues), (3, 1));
    assert_eq!((t["lpm0"].queues, t["lpm0"].disabled_queues), (2, 0));
    assert_eq!(t["lsl0"].master.as_deref(), Some("lbr0"));
    assert_eq!(t["lsl0"].tag.as_deref(), Some("ci-7"));
    assert_eq!(
        (t["lp0"].tag.as_ref(), t["low0"].tag.as_ref()),
        (None, None)
    );
    assert_eq!((t["low0"].owner, t["low0"].group), (Some(4242), Some(4343)));
    assert!(t["ltn0"].mac.is_none() && !t["ltn0"].tap && t["ltn0"].pi);
    assert!(!t["lnv0"].vnet_hdr && t["lsq0"].vnet_hdr);
    assert!(t["lsq0"].up && t["lsq0"].queues == 1 && t["lp0"].queues == 0);

    // A device down keeps its carrier: the single-queue count holds.
    ns.ip(&["link", "set", "lsq0", "down"]);
    let taps = ns.enter(|| list_taps(&RealSys, None)).unwrap();
    assert_eq!(by_name(&taps)["lsq0"].queues, 1);
    // Released: the count drops (and the non-persistent device is gone).
    drop(mq);
    let taps = ns.enter(|| list_taps(&RealSys, None)).unwrap();
    assert!(!taps.iter().any(|t| t.ifname == "lmq0"));
    compare_with_ip(&ns, &taps, &["lsq0", "lnv0"]);
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn holders_and_ebusy_name_the_process() {
    let _serial = serial();
    let ns = Netns::new("hold");
    let me = std::process::id();
    let (sq, mq_name, none) = (dev("hsq0"), dev("hmq0"), dev("hnone0"));
    let held = ns.hold(&sq, IFF_TAP | IFF_NO_PI, 1);
    let mq = ns.hold(&mq_name, IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, 3);
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let comm = comm.trim_end();

    let h = tap_holders(&RealSys, &sq).unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!((h[0].pid, h[0].command.as_str()), (me, comm));
    assert_eq!(h[0].fds, raw_fds(&held));
    let h = tap_holders(&RealSys, &mq_name).unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].fds, raw_fds(&mq));
    assert!(tap_holders(&RealSys, &none).unwrap().is_empty());
    // Opening the held single-queue device: EBUSY, naming this process.
    let opts = OpenOptions {
        name: sq.clone(),
        vnet_hdr: Tristate::Off,
        ..OpenOptions::default()
    };
    let e = ns.enter(|| open_tap(&RealSys, &opts)).unwrap_err();
    let Error::Os(os) = &e else { panic!("{e:?}") };
    assert_eq!((os.errno, os.syscall), (Errno::EBUSY, "ioctl(TUNSETIFF)"));
    assert_eq!(os.holders.len(), 1);
    assert_eq!(os.holders[0].pid, me);
    assert_eq!(os.holders[0].fds, raw_fds(&held));
    let text = e.to_string();
    assert!(
        text.contains(&format!("held by pid {me} ({comm})")),
        "{text}"
    );
    // Released: the device (not persistent) is gone, and so are its holders.
    drop(held);
    assert!(tap_holders(&RealSys, &sq).unwrap().is_empty());
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn tags_and_stats_of_an_open_device() {
    let _serial = serial();
    let ns = Netns::new("stats");
    // Nothing but our frames may move: no IPv6 (router solicitations, MLD).
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    ns.exec("sysctl", &["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    let opts = OpenOptions {
        name: "st0".into(),
        vnet_hdr: Tristate::Off,
        up: true,
        tag: Some("stats-1".into()),
        ..OpenOptions::default()
    };
    let tap = ns.enter(|| open_tap(&RealSys, &opts)).unwrap();
    let j = ns.ip_json(&["-d", "link", "show", "dev", "st0"]).arr()[0].clone();
    assert_eq!(j.str("ifalias"), Some("vmtap:tag=stats-1"));
    let ifindex = ns.enter(|| tap.ifindex(&RealSys)).unwrap();
    assert_eq!(j.num("ifindex"), Some(u64::from(ifindex)));

    // Frames written to the fd are what the device receives.
    let mut frame = vec![0xffu8; 6];
    frame.extend_from_slice(&[0xfe, 0, 0, 0, 0, 1, 0x88, 0xb5]); // local experimental ethertype
    frame.resize(100, 0xab);
    let fd = tap.tap_fds()[0].as_raw_fd();
    for _ in 0..7 {
        // SAFETY: write(2) of a live buffer to an fd the Tap owns.
        let n = unsafe { libc::write(fd, frame.as_ptr().cast(), frame.len()) };
        assert_eq!(n, frame.len() as isize);
    }
    let s = ns.enter(|| tap.get_stats(&RealSys)).unwrap();
    let j = ns.ip_json(&["-s", "link", "show", "dev", "st0"]).arr()[0].clone();
    let st = j.get("stats64").unwrap();
    let (rx, tx) = (st.get("rx").unwrap(), st.get("tx").unwrap());
    assert_eq!(rx.num("packets"), Some(s.rx_packets));
    assert_eq!(rx.num("bytes"), Some(s.rx_bytes));
    assert_eq!(rx.num("errors"), Some(s.rx_errors));
    assert_eq!(rx.num("dropped"), Some(s.rx_dropped));
    assert_eq!(tx.num("packets"), Some(s.tx_packets));
    assert_eq!(tx.num("bytes"), Some(s.tx_bytes));
    assert_eq!(tx.num("errors"), Some(s.tx_errors));
    assert_eq!(tx.num("dropped"), Some(s.tx_dropped));
    assert_eq!((s.rx_packets, s.rx_bytes), (7, 700));

    // Renamed behind the Tap's back: the remembered ifindex still finds it.
    ns.ip(&["link", "set", "st0", "down"]);
    ns.ip(&["link", "set", "st0", "name", "st0x"]);
    let again = ns.enter(|| tap.get_stats(&RealSys)).unwrap();
    assert_eq!(again.rx_packets, 7);

    // set_tag replaces and clears the alias; a bad tag is refused first.
    ns.enter(|| tap.set_tag(&RealSys, Some("other"))).unwrap();
    let alias = |ns: &Netns| {
        ns.ip_json(&["link", "show", "dev", "st0x"]).arr()[0]
            .str("ifalias")
            .map(str::to_owned)
    };
    assert_eq!(alias(&ns).as_deref(), Some("vmtap:tag=other"));
    let e = ns.enter(|| tap.set_tag(&RealSys, Some("a b"))).unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    ns.enter(|| tap.set_tag(&RealSys, None)).unwrap();
    assert_eq!(alias(&ns), None);
    tap.close().unwrap();
}

/// The gc's devices: what each is, and whether it must survive a gc of `t`.
fn gc_setup(ns: &Netns) -> Vec<OwnedFd> {
    let tag = |dev: &str, t: &str| ns.ip(&["link", "set", dev, "alias", &format!("vmtap:tag={t}")]);
    for (base, mq) in [
        ("gfree0", false),  // tagged t, unheld: removed
        ("gfreem0", true),  // tagged t, multi-queue, unheld: removed
        ("gheld0", false),  // tagged t, held: kept
        ("gheldm0", true),  // tagged t, multi-queue, one queue held (disabled): kept
        ("guntag0", false), // untagged: never touched
        ("gother0", false), // tagged u: only a gc of any tag removes it
    ] {
        let name = dev(base);
        let mut args = vec!["tuntap", "add", "dev", &name, "mode", "tap"];
        if mq {
            args.push("multi_queue");
        }
        ns.ip(&args);
    }
    for base in ["gfree0", "gfreem0", "gheld0", "gheldm0"] {
        tag(&dev(base), "t");
    }
    tag(&dev("gother0"), "u");
    ns.ip(&["link", "set", &dev("guntag0"), "alias", "not a tag"]);
    let mut fds = ns.hold(&dev("gheld0"), IFF_TAP | IFF_NO_PI, 1);
    let m = ns.hold(&dev("gheldm0"), IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE, 1);
    detach_queue(&m[0]);
    fds.extend(m);
    fds
}

/// [`dev`] of each.
fn devs(bases: &[&str]) -> Vec<String> {
    bases.iter().map(|b| dev(b)).collect()
}

fn names<T>(v: &[(vmtap_core::gc::GcEntry, T)]) -> Vec<&str> {
    v.iter().map(|(e, _)| e.ifname.as_str()).collect()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn gc_removes_unheld_tagged_devices_only() {
    let _serial = serial();
    let ns = Netns::new("gc");
    let held = gc_setup(&ns);
    let all = ns.persistent_taps();
    let t = |dry_run| GcOptions {
        tag: Some("t".into()),
        dry_run,
        ..GcOptions::default()
    };

    let dry = ns.enter(|| gc_taps(&RealSys, &t(true))).unwrap();
    let removed: Vec<&str> = dry.removed.iter().map(|e| e.ifname.as_str()).collect();
    assert_eq!(removed, devs(&["gfree0", "gfreem0"]));
    assert_eq!(names(&dry.kept), devs(&["gheld0", "gheldm0"]));
    assert_eq!(ns.persistent_taps(), all, "a dry run removes nothing");

    let r = ns.enter(|| gc_taps(&RealSys, &t(false))).unwrap();
    let removed: Vec<&str> = r.removed.iter().map(|e| e.ifname.as_str()).collect();
    assert_eq!(removed, devs(&["gfree0", "gfreem0"]));
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(names(&r.kept), devs(&["gheld0", "gheldm0"]));
    let me = std::process::id();
    for (e, holders) in &r.kept {
        assert_eq!(holders.len(), 1, "{}: {holders:?}", e.ifname);
        assert_eq!(holders[0].pid, me);
        assert_eq!(e.tag, "t");
    }
    assert_eq!(
        ns.persistent_taps(),
        devs(&["gheld0", "gheldm0", "gother0", "guntag0"])
    );

    // The holders let go: a second gc takes them.
    drop(held);
    let r = ns.enter(|| gc_taps(&RealSys, &t(false))).unwrap();
    let removed: Vec<&str> = r.removed.iter().map(|e| e.ifname.as_str()).collect();
    assert_eq!(removed, devs(&["gheld0", "gheldm0"]));
    assert_eq!(ns.persistent_taps(), devs(&["gother0", "guntag0"]));
    // Any tag: the other one too; untagged never.
    let r = ns
        .enter(|| gc_taps(&RealSys, &GcOptions::default()))
        .unwrap();
    assert_eq!(r.removed.len(), 1);
    assert_eq!(
        (r.removed[0].ifname.as_str(), r.removed[0].tag.as_str()),
        (dev("gother0").as_str(), "u")
    );
    assert_eq!(ns.persistent_taps(), devs(&["guntag0"]));
}

/// RealSys, plus a "VMM" that attaches a queue to `name` at a chosen moment
/// of the collection, as a concurrent open would.
struct Racer {
    name: &'static str,
    flags: u16,
    /// Attach right after TUNSETPERSIST 0 (else after the receive that follows it).
    at_persist: bool,
    armed: AtomicBool,
    persist_off_seen: AtomicBool,
    /// gc's own TUNSETIFF calls.
    attaches: AtomicUsize,
    result: Mutex<Option<Result<Vec<OwnedFd>, Errno>>>,
}

impl Racer {
    fn race(&self) {
        if !self.armed.swap(false, Ordering::SeqCst) {
            return;
        }
        let attached = std::thread::scope(|s| {
            s.spawn(|| {
                let fd = RealSys.open(c"/dev/net/tun", libc::O_RDWR)?;
                let mut req = IfReq::with_name_flags(self.name, self.flags);
                RealSys.ioctl(fd.as_fd(), &mut Ioctl::TunSetIff(&mut req))?;
                Ok(vec![fd])
            })
            .join()
            .unwrap()
        });
        *self.result.lock().unwrap() = Some(attached);
    }
}

impl Sys for Racer {
    fn open(&self, path: &CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
        RealSys.open(path, flags)
    }
    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        RealSys.control_socket()
    }
    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        let off = matches!(op, Ioctl::TunSetPersist(false));
        if matches!(op, Ioctl::TunSetIff(_)) {
            self.attaches.fetch_add(1, Ordering::SeqCst);
        }
        let r = RealSys.ioctl(fd, op);
        if off {
            self.persist_off_seen.store(true, Ordering::SeqCst);
            if self.at_persist {
                self.race();
            }
        }
        r
    }
    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        RealSys.netlink_socket()
    }
    fn netlink_send(&self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        RealSys.netlink_send(fd, msg)
    }
    fn netlink_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        let r = RealSys.netlink_recv(fd, buf);
        if !self.at_persist && self.persist_off_seen.load(Ordering::SeqCst) {
            self.race();
        }
        r
    }
    fn read_dir(&self, p: &CStr) -> Result<Vec<String>, Errno> {
        RealSys.read_dir(p)
    }
    fn read_link(&self, p: &CStr) -> Result<Vec<u8>, Errno> {
        RealSys.read_link(p)
    }
    fn read_file(&self, p: &CStr) -> Result<Vec<u8>, Errno> {
        RealSys.read_file(p)
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn gc_never_deletes_a_device_acquired_while_it_collects() {
    let _serial = serial();
    let ns = Netns::new("race");
    let mq = IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE;
    // (device, flags, whether the race is right after TUNSETPERSIST 0)
    for (dev, flags, at_persist, attaches) in [
        // Single-queue: once gc is attached nobody else can attach (EBUSY),
        // and the device goes.
        ("rsq0", IFF_TAP | IFF_NO_PI, true, 1),
        // Multi-queue, a queue attached right after TUNSETPERSIST 0: the
        // re-check sees it and makes the device persistent again.
        ("rmq0", mq, true, 1),
        // Multi-queue, attached after the re-check, before the close: the
        // device outlives the close; gc attaches again and restores persist.
        ("rmq1", mq, false, 2),
    ] {
        let mut args = vec!["tuntap", "add", "dev", dev, "mode", "tap"];
        if flags & IFF_MULTI_QUEUE != 0 {
            args.push("multi_queue");
        }
        ns.ip(&args);
        // A tag of its own: each gc sees this device alone.
        ns.ip(&["link", "set", dev, "alias", &format!("vmtap:tag={dev}")]);
        let opts = GcOptions {
            tag: Some(dev.into()),
            ..GcOptions::default()
        };
        let racer = Racer {
            name: dev,
            flags,
            at_persist,
            armed: AtomicBool::new(true),
            persist_off_seen: AtomicBool::new(false),
            attaches: AtomicUsize::new(0),
            result: Mutex::new(None),
        };
        let r = ns.enter(|| gc_taps(&racer, &opts)).unwrap();
        let raced = racer.result.lock().unwrap().take().expect("the race ran");
        assert!(r.failed.is_empty(), "{dev}: {:?}", r.failed);
        assert_eq!(racer.attaches.load(Ordering::SeqCst), attaches, "{dev}");
        if flags & IFF_MULTI_QUEUE == 0 {
            assert_eq!(
                raced.err(),
                Some(Errno::EBUSY),
                "{dev}: the VMM was refused"
            );
            assert_eq!(r.removed.len(), 1, "{dev}");
            assert!(!ns.persistent_taps().contains(&dev.to_owned()));
        } else {
            let fds = raced.expect("a multi-queue attach succeeds");
            assert!(r.removed.is_empty(), "{dev}: {:?}", r.removed);
            assert_eq!(names(&r.kept), [dev]);
            assert!(
                ns.persistent_taps().contains(&dev.to_owned()),
                "{dev} is persistent again"
            );
            drop(fds);
            assert!(
                ns.persistent_taps().contains(&dev.to_owned()),
                "{dev} outlives its holder"
            );
        }
    }
    // Left over from the races, unheld now: collected.
    let r = ns
        .enter(|| gc_taps(&RealSys, &GcOptions::default()))
        .unwrap();
    assert_eq!(r.removed.len(), 2);
    assert!(ns.persistent_taps().is_empty());
}
