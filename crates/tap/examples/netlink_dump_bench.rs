//! How long listing N tun devices takes: one netlink dump with
//! vmtap_core::netlink vs `ip -d -j link show type tun`. Needs root; works in
//! a network namespace of its own, deleted at the end.
//!
//!     node scripts/cargo.mjs run --release -p vmtap-core --example netlink_dump_bench -- 1000

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use vmtap_core::fault::FaultSys;
use vmtap_core::netlink::{LinkFilter, Netlink};
use vmtap_core::sys::consts::{IFF_NO_PI, IFF_TAP};
use vmtap_core::sys::Call;
use vmtap_core::sys::{IfReq, Ioctl};
use vmtap_core::{RealSys, Sys};

fn ip(args: &[&str]) -> std::process::Output {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}");
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1000, |s| s.parse().unwrap());
    let ns = format!("vmtap-nl-bench-{}", std::process::id());
    ip(&["netns", "add", &ns]);
    let result = std::panic::catch_unwind(|| run(&ns, n));
    let t = Instant::now();
    ip(&["netns", "del", &ns]);
    eprintln!("netns del: {:?} (asynchronous in the kernel)", t.elapsed());
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}

fn run(ns: &str, n: usize) {
    let file = File::open(format!("/run/netns/{ns}")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns(2) on a namespace fd we hold; moves only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0);

            let t = Instant::now();
            for i in 0..n {
                let fd = RealSys.open(c"/dev/net/tun", libc::O_RDWR).unwrap();
                let mut req = IfReq::with_name_flags(&format!("bt{i}"), IFF_TAP | IFF_NO_PI);
                RealSys
                    .ioctl(fd.as_fd(), &mut Ioctl::TunSetIff(&mut req))
                    .unwrap();
                RealSys
                    .ioctl(fd.as_fd(), &mut Ioctl::TunSetPersist(true))
                    .unwrap();
            }
            eprintln!("created {n} persistent taps in {:?}", t.elapsed());

            let tun = LinkFilter {
                kind: Some("tun".into()),
                ..Default::default()
            };
            let mut ours = Vec::new();
            let mut cold = None;
            for round in 0..21 {
                let t = Instant::now();
                let mut nl = Netlink::open(&RealSys).unwrap();
                let links = nl.links(&tun).unwrap();
                let d = t.elapsed();
                assert_eq!(links.len(), n);
                if round == 0 {
                    cold = Some(d);
                } else {
                    ours.push(d);
                }
            }
            let mut all = Vec::new();
            for _ in 0..11 {
                let mut nl = Netlink::open(&RealSys).unwrap();
                let t = Instant::now();
                let links = nl.links(&LinkFilter::default()).unwrap();
                all.push(t.elapsed());
                assert_eq!(links.len(), n + 1);
            }

            let counting = FaultSys::new(RealSys, 0, Errno::EIO);
            Netlink::open(&counting).unwrap().links(&tun).unwrap();
            let recvs = counting
                .calls()
                .iter()
                .filter(|c| matches!(c, Call::NetlinkRecv(_)))
                .count();

            let mut theirs = Vec::new();
            let mut spawn = Vec::new();
            for _ in 0..7 {
                let t = Instant::now();
                let out = ip(&["-n", ns, "-d", "-j", "link", "show", "type", "tun"]);
                theirs.push(t.elapsed());
                assert!(out.stdout.len() > n * 100);
                let t = Instant::now();
                ip(&["-n", ns, "link", "show", "dev", "lo"]);
                spawn.push(t.elapsed());
            }
            println!("{n} tun devices in one namespace:");
            println!(
                "  vmtap netlink (open + dump kind=tun + parse): median {:?} (first {:?})",
                median(ours),
                cold.unwrap()
            );
            println!(
                "  vmtap netlink dump of every link:            median {:?}",
                median(all)
            );
            println!("  ({recvs} datagrams of up to 32 KiB per dump)");
            println!(
                "  ip -d -j link show type tun:                 median {:?}",
                median(theirs)
            );
            println!(
                "  (ip link show dev lo, process start-up:      median {:?})",
                median(spawn)
            );
        })
        .join()
        .unwrap();
    });
}
