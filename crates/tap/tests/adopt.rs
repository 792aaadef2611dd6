//! adopt_tap against the real kernel, each test in a network namespace of
//! its own: fds received over a socket (SCM_RIGHTS, as from a broker)
//! become a Tap; fds of different devices, of a TUN device, of nothing,
//! and a failure at every syscall are refused with the fds left open and
//! untouched. A vhost fd is adopted with the tap fds; vhost-net may be absent
//! (this kernel has none), so a /dev/null fd stands in for it, as in
//! faults.rs. Needs root (CAP_NET_ADMIN).

mod support;

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};

use nix::errno::Errno;
use support::Netns;
use vmtap_core::fault::FaultSys;
use vmtap_core::fdpass::{dup_fds, try_recv, Send, Step, StreamSocket};
use vmtap_core::sys::consts::*;
use vmtap_core::sys::{Fcntl, IfReq, Ioctl};
use vmtap_core::{adopt_tap, open_tap, OpenOptions, RealSys, Sys, Tap, Tristate};

fn open(name: &str, queues: u32) -> Tap {
    let opts = OpenOptions {
        name: name.into(),
        queues,
        vnet_hdr: Tristate::On,
        ..OpenOptions::default()
    };
    open_tap(&RealSys, &opts).unwrap()
}

/// The tap's fds as another process would receive them: over a socketpair
/// with SCM_RIGHTS (new numbers, close-on-exec), the sender's copies closed.
fn received(tap: Tap) -> Vec<RawFd> {
    let (a, b) = UnixStream::pair().unwrap();
    let sa = StreamSocket::dup(a.as_raw_fd()).unwrap();
    let sb = StreamSocket::dup(b.as_raw_fd()).unwrap();
    // A socketpair's buffer takes one byte at once: neither call waits.
    let mut send = Send::new(b"t".to_vec(), dup_fds(&tap.raw_tap_fds()).unwrap()).unwrap();
    assert_eq!(send.try_send(&sa).unwrap(), Step::Done(1));
    drop(send);
    drop(tap);
    let Step::Done(got) = try_recv(&sb, 8, 253).unwrap() else {
        panic!("the fds were sent");
    };
    got.fds
        .into_iter()
        .map(std::os::fd::IntoRawFd::into_raw_fd)
        .collect()
}

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD on a number; EBADF when it is not open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

fn cloexec(fd: RawFd) -> bool {
    // SAFETY: as above.
    unsafe { libc::fcntl(fd, libc::F_GETFD) & libc::FD_CLOEXEC != 0 }
}

fn close(fds: &[RawFd]) {
    for &fd in fds {
        // SAFETY: the test owns these numbers and closes each once.
        unsafe { libc::close(fd) };
    }
}

fn exists(ns: &Netns, name: &str) -> bool {
    std::process::Command::new("ip")
        .args(["-n", &ns.name, "link", "show", "dev", name])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn received_fds_become_a_tap_that_owns_them() {
    let ns = Netns::new("adopt");
    let (name, features, fds) = ns.enter(|| {
        let tap = open("vmtad%d", 4);
        let (name, features) = (tap.ifname().to_owned(), tap.features());
        (name, features, received(tap))
    });
    assert!(exists(&ns, &name), "the received fds keep the device");
    let tap = adopt_tap(&RealSys, &fds, &[]).unwrap();
    assert_eq!(tap.ifname(), name);
    assert_eq!(
        tap.raw_tap_fds(),
        fds,
        "the Tap owns exactly the numbers given"
    );
    assert!(tap.multi_queue() && tap.vnet_hdr());
    assert_eq!(
        tap.flags(),
        IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
    );
    assert_eq!(tap.features(), features);
    assert_eq!(tap.close().unwrap(), 4);
    assert!(fds.iter().all(|&fd| !is_open(fd)), "close() closed them");
    assert!(!exists(&ns, &name), "and the device went with them");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn fds_without_close_on_exec_get_it() {
    let ns = Netns::new("adoptcx");
    let tap = ns.enter(|| open("vmtadcx", 1));
    // SAFETY: dup of an fd we hold; the copy has no FD_CLOEXEC.
    let fd = unsafe { libc::dup(tap.raw_tap_fds()[0]) };
    drop(tap);
    assert!(!cloexec(fd));
    let tap = adopt_tap(&RealSys, &[fd], &[]).unwrap();
    assert!(cloexec(fd));
    assert!(!tap.multi_queue());
    tap.close().unwrap();
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn fds_of_other_devices_are_refused_and_left_open() {
    let ns = Netns::new("adoptdiff");
    let (a, b) = ns.enter(|| (received(open("vmtada", 2)), received(open("vmtadb", 2))));
    let mixed = [a[0], b[1]];
    let e = adopt_tap(&RealSys, &mixed, &[]).unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE", "{e}");
    assert!(e.to_string().contains("vmtada and vmtadb"), "{e}");
    assert!(
        a.iter().chain(&b).all(|&fd| is_open(fd)),
        "nothing was closed"
    );

    // Two devices of one name in two namespaces: told apart by their MACs.
    let other = Netns::new("adoptdiff2");
    let c = other.enter(|| received(open("vmtada", 2)));
    let e = adopt_tap(&RealSys, &[a[0], c[1]], &[]).unwrap_err();
    assert!(e.to_string().contains("two devices named vmtada"), "{e}");

    // A single-queue device with the same fd twice (as a dup).
    let single = ns.enter(|| received(open("vmtads", 1)));
    // SAFETY: dup of an fd we hold.
    let twice = unsafe { libc::dup(single[0]) };
    let e = adopt_tap(&RealSys, &[single[0], twice], &[]).unwrap_err();
    assert!(e.to_string().contains("which has one queue"), "{e}");

    // A vhost fd that is not one.
    let null = std::fs::File::open("/dev/null").unwrap();
    let e = adopt_tap(&RealSys, &single, &[null.as_raw_fd()]).unwrap_err();
    assert_eq!(e.code(), "ENOTTY", "{e}");
    assert!(e.to_string().contains("vhostFds[0]"), "{e}");
    assert!(
        is_open(null.as_raw_fd()),
        "the refused vhost fd is left open"
    );
    close(&single);
    close(&a);
    close(&b);
    close(&c);
    close(&[twice]);
}

/// RealSys, except that VHOST_GET_FEATURES on `stand_in` (a /dev/null fd)
/// answers as a /dev/vhost-net fd would: vhost-net may be absent (this
/// kernel has none), and faults.rs stands in for it with /dev/null too.
struct VhostStandIn {
    stand_in: RawFd,
    asked: AtomicUsize,
}

impl Sys for VhostStandIn {
    fn open(&self, path: &std::ffi::CStr, flags: libc::c_int) -> Result<OwnedFd, Errno> {
        RealSys.open(path, flags)
    }
    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        RealSys.control_socket()
    }
    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        match op {
            Ioctl::VhostGetFeatures(features) if fd.as_raw_fd() == self.stand_in => {
                self.asked.fetch_add(1, Ordering::SeqCst);
                **features = 1 << 32; // any answer: adoption only needs the ioctl to succeed
                Ok(())
            }
            _ => RealSys.ioctl(fd, op),
        }
    }
    fn fcntl(&self, fd: RawFd, op: Fcntl) -> Result<libc::c_int, Errno> {
        RealSys.fcntl(fd, op)
    }
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn a_vhost_fd_is_checked_and_adopted_with_the_tap_fd() {
    let ns = Netns::new("adoptvh");
    let single = ns.enter(|| received(open("vmtadv", 1)));
    let null = std::fs::File::open("/dev/null").unwrap();
    // SAFETY: dup of an fd we hold; the copy has no FD_CLOEXEC.
    let stand_in = unsafe { libc::dup(null.as_raw_fd()) };
    drop(null);
    assert!(stand_in >= 0 && !cloexec(stand_in));
    let sys = VhostStandIn {
        stand_in,
        asked: AtomicUsize::new(0),
    };
    let tap = adopt_tap(&sys, &single, &[stand_in]).unwrap();
    assert_eq!(
        sys.asked.load(Ordering::SeqCst),
        1,
        "the vhost fd was checked"
    );
    assert_eq!(tap.raw_tap_fds(), single);
    assert_eq!(
        tap.raw_vhost_fds(),
        [stand_in],
        "the Tap owns the vhost fd given"
    );
    assert!(cloexec(stand_in), "and made it close-on-exec");
    assert_eq!(tap.vhost_fds().len(), 1);
    // Both were still open and the Tap's: close() closed both without an error.
    assert_eq!(tap.close().unwrap(), 2);
    assert!(!exists(&ns, "vmtadv"), "the device went with its fd");
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn a_tun_device_is_refused() {
    let ns = Netns::new("adopttun");
    let fd = ns.enter(|| {
        let fd = RealSys.open(c"/dev/net/tun", libc::O_RDWR).unwrap();
        let mut req = IfReq::with_name_flags("vmtadtun", IFF_TUN | IFF_NO_PI);
        RealSys
            .ioctl(
                std::os::fd::AsFd::as_fd(&fd),
                &mut Ioctl::TunSetIff(&mut req),
            )
            .unwrap();
        fd
    });
    let e = adopt_tap(&RealSys, &[fd.as_raw_fd()], &[]).unwrap_err();
    assert!(e.to_string().contains("TUN device"), "{e}");
    assert!(is_open(fd.as_raw_fd()));
}

#[test]
#[ignore = "needs root (CAP_NET_ADMIN and /dev/net/tun)"]
fn a_failure_at_any_syscall_takes_nothing() {
    let ns = Netns::new("adoptflt");
    let fds = ns.enter(|| {
        let tap = open("vmtadf", 2);
        // Copies without FD_CLOEXEC, so that adoption sets it (F_SETFD runs).
        // SAFETY: dup of fds we hold.
        let fds: Vec<RawFd> = tap
            .raw_tap_fds()
            .iter()
            .map(|&f| unsafe { libc::dup(f) })
            .collect();
        drop(tap);
        fds
    });
    let all = FaultSys::new(RealSys, 0, Errno::EIO);
    let calls = {
        // Count the calls on a dry run: adopt copies of the copies, then close.
        // SAFETY: dup of fds we hold.
        let probe: Vec<RawFd> = fds.iter().map(|&f| unsafe { libc::dup(f) }).collect();
        adopt_tap(&all, &probe, &[]).unwrap().close().unwrap();
        all.calls()
    };
    // F_GETFD x2, then per fd TUNGETIFF + SIOCGIFHWADDR, TUNGETFEATURES, F_SETFD x2.
    assert_eq!(calls.len(), 2 + 2 * 2 + 1 + 2, "{calls:?}");
    for k in 1..=calls.len() {
        let sys = FaultSys::new(RealSys, k, Errno::EIO);
        let e = adopt_tap(&sys, &fds, &[]).unwrap_err();
        assert_eq!(e.code(), "EIO", "call {k} ({:?}): {e}", sys.failed_call());
        assert!(
            fds.iter().all(|&fd| is_open(fd)),
            "call {k}: nothing closed"
        );
    }
    // Some F_SETFD calls went through before the injected one: harmless.
    let tap = adopt_tap(&RealSys, &fds, &[]).unwrap();
    let name = tap.ifname().to_owned();
    tap.close().unwrap();
    assert!(!exists(&ns, &name));
}
