//! open_macvtap against the kernel, each test in network namespaces of its
//! own, compared with `ip -d -j` and with what the fds do: TUNGETIFF,
//! SIOCGIFHWADDR and fstat on every fd, a frame written to a queue arriving
//! at the far end of the lower veth. Needs root (ignored otherwise;
//! scripts/test-rust.mjs includes them as root). One test at a time
//! ([`serial`]): some look at /dev, where another's node would show.

mod support;

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};

use vmtap_core::link::format_mac;
use vmtap_core::netlink::MacvlanMode;
use vmtap_core::netns::NetNsSpec;
use vmtap_core::sys::consts::*;
use vmtap_core::sys::{IfReq, Ioctl};
use vmtap_core::{
    delete_tap, open_macvtap, tun, Error, MacvtapOptions, RealSys, Sys, Tap, Tristate,
};

use support::{Json, Netns};

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// What an fd was opened from, as /proc shows it.
fn opened_from(fd: &OwnedFd) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A namespace with a veth pair vb0 (the lower link) / vb1, both up, and
/// no IPv6 (whose neighbour discovery would add frames to the counts).
fn lower_ns(tag: &str) -> Netns {
    let ns = Netns::new(tag);
    for key in ["all", "default"] {
        ns.exec(
            "sysctl",
            &["-q", "-w", &format!("net.ipv6.conf.{key}.disable_ipv6=1")],
        );
    }
    ns.ip(&["link", "set", "lo", "up"]);
    ns.ip(&["link", "add", "vb0", "type", "veth", "peer", "name", "vb1"]);
    ns.ip(&["link", "set", "vb0", "up"]);
    ns.ip(&["link", "set", "vb1", "up"]);
    ns
}

fn in_ns(ns: &Netns) -> Option<NetNsSpec> {
    Some(NetNsSpec::Path(ns.name.clone()))
}

fn link_json(ns: &Netns, name: &str) -> Option<Json> {
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.name, "-d", "-j", "link", "show", "dev", name])
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| Json::parse(&String::from_utf8(out.stdout).unwrap()).arr()[0].clone())
}

fn exists(ns: &Netns, name: &str) -> bool {
    link_json(ns, name).is_some()
}

fn fd_mac(fd: &OwnedFd) -> [u8; 6] {
    let mut req = IfReq::zeroed();
    RealSys
        .ioctl(fd.as_fd(), &mut Ioctl::GetIfHwAddr(&mut req))
        .unwrap();
    // SAFETY: SIOCGIFHWADDR filled the sockaddr member of the union.
    let data = unsafe { req.data.hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (m, d) in mac.iter_mut().zip(data.iter()) {
        *m = *d as u8;
    }
    mac
}

fn rx_packets(ns: &Netns, name: &str) -> u64 {
    let j = ns.ip_json(&["-s", "link", "show", "dev", name]);
    j.arr()[0]
        .get("stats64")
        .and_then(|s| s.get("rx"))
        .and_then(|r| r.num("packets"))
        .unwrap()
}

/// A broadcast frame from `src` on `fd` (a queue without vnet_hdr).
fn send_frame(fd: &OwnedFd, src: [u8; 6]) {
    let mut frame = vec![0xff; 6];
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    frame.extend_from_slice(&[0x5a; 46]);
    let mut f = std::fs::File::from(fd.try_clone().unwrap());
    f.write_all(&frame).unwrap();
}

/// Every fd is attached to `tap` (TUNGETIFF), shows its MAC (SIOCGIFHWADDR)
/// and is its character device (fstat); a frame written to each reaches vb1.
fn check_fds(ns: &Netns, tap: &Tap) {
    let m = tap.macvtap().expect("a macvtap");
    for (q, fd) in tap.tap_fds().iter().enumerate() {
        let (name, flags) = tun::get_iff(&RealSys, fd.as_fd()).unwrap();
        assert_eq!(name, tap.ifname(), "queue {q}");
        assert_eq!(flags, tap.flags(), "queue {q}");
        assert_eq!(fd_mac(fd), m.mac(), "queue {q}");
        let st = RealSys.fstat(fd.as_fd()).unwrap();
        assert!(
            st.is_char_device(m.dev()),
            "queue {q}: {st:?} vs {}",
            m.dev()
        );
    }
    if !tap.vnet_hdr() {
        for fd in tap.tap_fds() {
            let before = rx_packets(ns, "vb1");
            send_frame(fd, m.mac());
            assert_eq!(
                rx_packets(ns, "vb1"),
                before + 1,
                "the frame went out on vb0"
            );
        }
    }
}

/// The major:minor sysfs shows for the macvtap, read where sysfs is this
/// namespace's (`ip netns exec` mounts one).
fn sysfs_dev(ns: &Netns, name: &str, ifindex: u32) -> String {
    ns.exec(
        "cat",
        &[&format!("/sys/class/net/{name}/macvtap/tap{ifindex}/dev")],
    )
    .trim()
    .to_owned()
}

fn thread_netns() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").unwrap()
}

/// The directory of the node an fd was opened from (`/dev/.vmtap-XXXXXX`
/// for `/dev/.vmtap-XXXXXX/tap5 (deleted)`).
fn opened_dir(fd: &OwnedFd) -> String {
    let from = opened_from(fd);
    let path = from.strip_suffix(" (deleted)").unwrap_or(&from);
    std::path::Path::new(path)
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

fn os(e: &Error) -> &vmtap_core::OsError {
    match e {
        Error::Os(os) => os,
        other => panic!("{other:?}"),
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn a_two_queue_macvtap_in_another_namespace_and_its_link_goes_with_close() {
    let _serial = serial();
    let ns = lower_ns("mvq");
    let home = thread_netns();
    let tap = open_macvtap(
        &RealSys,
        &MacvtapOptions {
            link: "vb0".into(),
            queues: 2,
            vnet_hdr: Tristate::Off,
            up: true,
            netns: in_ns(&ns),
            ..MacvtapOptions::default()
        },
    )
    .unwrap();
    assert_eq!(thread_netns(), home, "the calling thread stayed home");
    let m = tap.macvtap().unwrap();
    assert!(tap.ifname().starts_with("macvtap"), "{}", tap.ifname());
    let j = link_json(&ns, tap.ifname()).expect("the link is in the namespace");
    let info = j.get("linkinfo").unwrap();
    assert_eq!(info.str("info_kind"), Some("macvtap"));
    assert_eq!(info.get("info_data").unwrap().str("mode"), Some("bridge"));
    assert_eq!(j.str("link"), Some("vb0"));
    assert_eq!(j.num("ifindex"), Some(u64::from(m.ifindex())));
    assert_eq!(j.str("address"), Some(format_mac(&m.mac()).as_str()));
    assert_eq!(tap.guest_mac(), Some(m.mac()));
    assert!(j.strs("flags").contains(&"UP".to_owned()));
    assert_eq!(
        sysfs_dev(&ns, tap.ifname(), m.ifindex()),
        m.dev().to_string(),
        "the uevent's number is sysfs's"
    );
    assert_eq!(tap.tap_fds().len(), 2);
    assert!(tap.multi_queue());
    assert!(!tap.vnet_hdr());
    assert_eq!(tap.flags(), IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
    assert_eq!(tap.ifindex(&RealSys).unwrap(), m.ifindex());
    check_fds(&ns, &tap);
    // devtmpfs made /dev/tap<ifindex> for it, unless a macvtap of another
    // namespace with the same ifindex has that name: then vmtap's own node.
    let shared = format!("/dev/tap{}", m.ifindex());
    let ours = RealSys
        .stat(&CString::new(shared.as_str()).unwrap())
        .is_ok_and(|st| st.is_char_device(m.dev()));
    for fd in tap.tap_fds() {
        let from = opened_from(fd);
        match ours {
            true => assert_eq!(from, shared),
            false => assert!(
                from.starts_with("/dev/.vmtap-") && from.ends_with(" (deleted)"),
                "{from}"
            ),
        }
    }
    // The link methods act in the macvtap's namespace.
    let li = tap.get_link_info(&RealSys).unwrap();
    assert_eq!((li.ifname.as_str(), li.mac), (tap.ifname(), m.mac()));
    tap.set_mtu(&RealSys, 1400).unwrap();
    assert_eq!(link_json(&ns, tap.ifname()).unwrap().num("mtu"), Some(1400));
    // No owner, no group: refused before any syscall.
    assert_eq!(
        tap.set_owner(&RealSys, 0).unwrap_err().code(),
        "ERR_INVALID_ARG_VALUE"
    );
    assert_eq!(
        tap.set_group(&RealSys, 0).unwrap_err().code(),
        "ERR_INVALID_ARG_VALUE"
    );
    let name = tap.ifname().to_owned();
    assert_eq!(tap.close().unwrap(), 2);
    assert!(!exists(&ns, &name), "close() deleted the link");
    assert_eq!(thread_netns(), home);
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn options_are_the_links_and_persist_keeps_it() {
    let _serial = serial();
    let ns = lower_ns("mvo");
    let mac = [0x52, 0x54, 0x00, 0x77, 0x00, 0x02];
    let tap = open_macvtap(
        &RealSys,
        &MacvtapOptions {
            link: "vb0".into(),
            name: "mvo%d".into(),
            mode: MacvlanMode::Vepa,
            mac: Some(mac),
            mtu: Some(1300),
            persist: true,
            tag: Some("mvt-test".into()),
            netns: in_ns(&ns),
            ..MacvtapOptions::default()
        },
    )
    .unwrap();
    assert_eq!(tap.ifname(), "mvo0");
    let j = link_json(&ns, "mvo0").unwrap();
    assert_eq!(
        j.get("linkinfo")
            .unwrap()
            .get("info_data")
            .unwrap()
            .str("mode"),
        Some("vepa")
    );
    assert_eq!(j.str("address"), Some("52:54:00:77:00:02"));
    assert_eq!(j.num("mtu"), Some(1300));
    assert_eq!(j.str("ifalias"), Some("vmtap:tag=mvt-test"));
    assert!(!j.strs("flags").contains(&"UP".to_owned()));
    // The driver's default: vnet_hdr on every queue.
    assert_eq!(tap.flags(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    assert_eq!(tap.guest_mac(), Some(mac));
    check_fds(&ns, &tap);
    tap.close().unwrap();
    assert!(exists(&ns, "mvo0"), "a persistent macvtap outlives close()");
    // deleteTap knows a macvtap when it sees one.
    delete_tap(&RealSys, "mvo0", c"/dev/net/tun", in_ns(&ns).as_ref()).unwrap();
    assert!(!exists(&ns, "mvo0"));

    // Persistence chosen later, and taken back; dropping deletes too.
    for (persist_then, kept) in [(Some(true), true), (Some(false), false), (None, false)] {
        let tap = open_macvtap(
            &RealSys,
            &MacvtapOptions {
                link: "vb0".into(),
                name: "mvp0".into(),
                mode: MacvlanMode::Private,
                netns: in_ns(&ns),
                persist: persist_then == Some(false),
                ..MacvtapOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            link_json(&ns, "mvp0")
                .unwrap()
                .get("linkinfo")
                .unwrap()
                .get("info_data")
                .unwrap()
                .str("mode"),
            Some("private")
        );
        match persist_then {
            Some(on) => {
                tap.set_persist(&RealSys, on).unwrap();
                assert_eq!(tap.macvtap().unwrap().persistent(), on);
                tap.close().unwrap();
            }
            None => drop(tap),
        }
        assert_eq!(exists(&ns, "mvp0"), kept, "{persist_then:?}");
        if kept {
            delete_tap(&RealSys, "mvp0", c"/dev/net/tun", in_ns(&ns).as_ref()).unwrap();
        }
    }

    // passthru: the one macvtap of its lower device.
    let tap = open_macvtap(
        &RealSys,
        &MacvtapOptions {
            link: "vb0".into(),
            mode: MacvlanMode::Passthru,
            netns: in_ns(&ns),
            ..MacvtapOptions::default()
        },
    )
    .unwrap();
    let j = link_json(&ns, tap.ifname()).unwrap();
    assert_eq!(
        j.get("linkinfo")
            .unwrap()
            .get("info_data")
            .unwrap()
            .str("mode"),
        Some("passthru")
    );
    let e = open_macvtap(
        &RealSys,
        &MacvtapOptions {
            link: "vb0".into(),
            netns: in_ns(&ns),
            ..MacvtapOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.code(), "EINVAL", "{e}");
    tap.close().unwrap();
    assert_eq!(
        ns.ip_json(&["link", "show", "type", "macvtap"]).arr().len(),
        0
    );
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn the_same_ifindex_in_two_namespaces_gets_the_right_device() {
    let _serial = serial();
    // devtmpfs has one /dev for every namespace, and /dev/tap<ifindex> is
    // named per namespace: the second macvtap with ifindex N finds the first
    // one's node there. vmtap must open its own device anyway.
    let a = lower_ns("mva");
    let b = lower_ns("mvb");
    a.ip(&[
        "link", "add", "link", "vb0", "name", "mv0", "type", "macvtap",
    ]);
    let ia = link_json(&a, "mv0").unwrap().num("ifindex").unwrap() as u32;
    let dev_a = sysfs_dev(&a, "mv0", ia);
    let tap = open_macvtap(
        &RealSys,
        &MacvtapOptions {
            link: "vb0".into(),
            name: "mv0".into(),
            queues: 3,
            vnet_hdr: Tristate::Off,
            up: true,
            netns: in_ns(&b),
            ..MacvtapOptions::default()
        },
    )
    .unwrap();
    let m = tap.macvtap().unwrap();
    assert_eq!(
        m.ifindex(),
        ia,
        "precondition: the same ifindex in both namespaces"
    );
    assert_ne!(m.dev().to_string(), dev_a);
    let shared = format!("/dev/tap{ia}");
    if let Ok(st) = RealSys.stat(&CString::new(shared.as_str()).unwrap()) {
        assert!(
            !st.is_char_device(m.dev()),
            "{shared} is the first macvtap's (or another's), not B's"
        );
    }
    assert_eq!(sysfs_dev(&b, "mv0", ia), m.dev().to_string());
    // Every fd is B's mv0: its MAC, not A's.
    let mac_a = link_json(&a, "mv0")
        .unwrap()
        .str("address")
        .unwrap()
        .to_owned();
    assert_ne!(format_mac(&m.mac()), mac_a);
    check_fds(&b, &tap);
    for fd in tap.tap_fds() {
        let from = opened_from(fd);
        assert!(
            from.starts_with("/dev/.vmtap-") && from.ends_with(&format!("/tap{ia} (deleted)")),
            "{from}"
        );
    }
    // vmtap's node and its directory are gone. Only the directories this
    // open made are looked at: /dev is shared with every process of the
    // machine, and another vmtap may have a `.vmtap-*` of its own there.
    let mut dirs: Vec<String> = tap.tap_fds().iter().map(opened_dir).collect();
    dirs.dedup();
    let left: Vec<&String> = dirs
        .iter()
        .filter(|d| std::fs::symlink_metadata(d).is_ok())
        .collect();
    assert_eq!(left, Vec::<&String>::new(), "vmtap's node is gone");
    tap.close().unwrap();
    assert!(!exists(&b, "mv0"));
    assert!(exists(&a, "mv0"), "A's macvtap is untouched");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn without_the_device_node_vmtap_makes_its_own_and_removes_it() {
    let _serial = serial();
    let ns = lower_ns("mvn");
    let dir = std::env::temp_dir().join(format!("vmtap-mvn-{}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    let dev_dir = CString::new(dir.to_str().unwrap()).unwrap();
    let result = std::panic::catch_unwind(|| {
        let tap = open_macvtap(
            &RealSys,
            &MacvtapOptions {
                link: "vb0".into(),
                queues: 2,
                vnet_hdr: Tristate::Off,
                up: true,
                netns: in_ns(&ns),
                dev_dir: dev_dir.clone(),
                ..MacvtapOptions::default()
            },
        )
        .unwrap();
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "node and directory removed once opened"
        );
        let prefix = format!("{}/.vmtap-", dir.display());
        for fd in tap.tap_fds() {
            let from = opened_from(fd);
            assert!(
                from.starts_with(&prefix) && from.ends_with(" (deleted)"),
                "{from}"
            );
        }
        check_fds(&ns, &tap);
        tap.close().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN, ip netns)"]
fn refusals_say_what_is_wrong() {
    let _serial = serial();
    let ns = lower_ns("mve");
    ns.ip(&[
        "link", "add", "link", "vb0", "name", "mvx", "type", "macvtap",
    ]);
    let try_open = |f: &dyn Fn(&mut MacvtapOptions)| {
        let mut o = MacvtapOptions {
            link: "vb0".into(),
            netns: in_ns(&ns),
            ..MacvtapOptions::default()
        };
        f(&mut o);
        open_macvtap(&RealSys, &o).map(|t| t.ifname().to_owned())
    };
    let before = ns.ip_json(&["link", "show"]).arr().len();

    let e = try_open(&|o| o.link = "nope0".into()).unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    assert_eq!(os(&e).ifname.as_deref(), Some("nope0"));
    assert!(
        e.to_string()
            .contains("no interface nope0 in network namespace"),
        "{e}"
    );

    let e = try_open(&|o| o.link = "mvx".into()).unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    assert!(e.to_string().contains("mvx is itself a macvtap"), "{e}");

    let e = try_open(&|o| o.link = "lo".into()).unwrap_err();
    assert_eq!(e.code(), "EINVAL");
    assert!(e.to_string().contains("loopback"), "{e}");

    let e = try_open(&|o| o.name = "vb1".into()).unwrap_err();
    assert_eq!(e.code(), "EEXIST");
    assert_eq!(os(&e).ifname.as_deref(), Some("vb1"));

    let e = try_open(&|o| o.mtu = Some(9000)).unwrap_err();
    assert_eq!(e.code(), "EINVAL", "an MTU above the lower's: {e}");

    assert_eq!(
        ns.ip_json(&["link", "show"]).arr().len(),
        before,
        "nothing left"
    );

    // The lower link in the caller's namespace, the macvtap asked for in
    // another: the caller is a thread in `ns`, the macvtap goes to `other`.
    let other = Netns::new("mvf");
    let e = ns
        .enter(|| {
            open_macvtap(
                &RealSys,
                &MacvtapOptions {
                    link: "vb0".into(),
                    netns: in_ns(&other),
                    ..MacvtapOptions::default()
                },
            )
        })
        .unwrap_err();
    assert_eq!(e.code(), "ENODEV");
    assert!(
        e.to_string()
            .contains("vb0 is in this process's network namespace"),
        "{e}"
    );
}
