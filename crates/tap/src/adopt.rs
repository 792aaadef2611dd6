//! Adopting fds that someone else opened: a [`Tap`] from TAP fds (and
//! vhost-net fds) received over a socket, e.g. from a privileged broker. The
//! fds are checked with the kernel before anything is taken: every number
//! is open (F_GETFD); every tap fd is a `/dev/net/tun` fd attached to a TAP
//! device (TUNGETIFF), all of them to the same one (same name, flags and
//! MAC address — the MAC, read through the tun fd itself, tells apart two
//! devices of one name in different network namespaces); more than one fd
//! needs a multi-queue device; every vhost fd answers VHOST_GET_FEATURES.
//! Only then are the fds made close-on-exec and owned by the `Tap`. On
//! failure nothing is closed or taken: the fds stay the caller's.
//!
//! Not detectable: two numbers for one open file (a `dup`) of a multi-queue
//! device count as two queues.

use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::device::Tap;
use crate::error::{Error, Result};
use crate::link::{self, format_mac};
use crate::rules;
use crate::sys::consts::*;
use crate::sys::{Fcntl, IfReq, Ioctl, Sys};
use crate::tun;

/// What one tap fd is attached to.
#[derive(Debug, PartialEq, Eq)]
struct Attached {
    name: String,
    flags: u16,
    mac: [u8; 6],
}

/// Where an fd came from, for messages: `tapFds[1] (fd 7)`.
fn at(list: &str, i: usize, fd: RawFd) -> String {
    format!("{list}[{i}] (fd {fd})")
}

/// Take `tap_fds` (one per queue, all on one TAP device) and `vhost_fds`
/// (none, or one per tap fd) as a [`Tap`]. See the module docs.
pub fn adopt_tap(sys: &dyn Sys, tap_fds: &[RawFd], vhost_fds: &[RawFd]) -> Result<Tap> {
    rules::check_adopt(tap_fds, vhost_fds)?;
    let lists = [("tapFds", tap_fds), ("vhostFds", vhost_fds)];

    // Every number must be open before it is borrowed.
    let mut fd_flags = Vec::with_capacity(tap_fds.len() + vhost_fds.len());
    for (list, fds) in lists {
        for (i, &fd) in fds.iter().enumerate() {
            let flags = sys.fcntl(fd, Fcntl::GetFd).map_err(|e| {
                Error::os(e, Fcntl::GetFd.name())
                    .with_hint(format!("{} is not open", at(list, i, fd)))
            })?;
            fd_flags.push((fd, flags));
        }
    }
    // SAFETY: each number was just found open (F_GETFD) and is used only
    // during this call, on this thread; ownership is taken below only once
    // every check passed.
    let borrow = |fd: RawFd| unsafe { BorrowedFd::borrow_raw(fd) };

    let mut first: Option<Attached> = None;
    for (i, &fd) in tap_fds.iter().enumerate() {
        let this = attached(sys, borrow(fd), &at("tapFds", i, fd))?;
        if this.flags & IFF_TUN != 0 || this.flags & IFF_TAP == 0 {
            return Err(Error::invalid(
                "tapFds",
                format!(
                    "{} is attached to {}, which is a TUN device; vmtap adopts TAP devices only",
                    at("tapFds", i, fd),
                    this.name
                ),
            ));
        }
        match &first {
            None => first = Some(this),
            Some(f) if *f == this => {}
            Some(f) => {
                let why = if f.name != this.name {
                    format!("{} and {}", f.name, this.name)
                } else {
                    format!(
                        "two devices named {} (MAC {} and {}: in different network namespaces?)",
                        f.name,
                        format_mac(&f.mac),
                        format_mac(&this.mac)
                    )
                };
                return Err(Error::invalid(
                    "tapFds",
                    format!(
                        "{} and {} belong to different devices: {why}; give the fds of one device",
                        at("tapFds", 0, tap_fds[0]),
                        at("tapFds", i, fd)
                    ),
                ));
            }
        }
    }
    let dev = first.expect("check_adopt: at least one tap fd");
    if tap_fds.len() > 1 && dev.flags & IFF_MULTI_QUEUE == 0 {
        return Err(Error::invalid(
            "tapFds",
            format!(
                "{} fds for {}, which has one queue (IFF_MULTI_QUEUE is not set): the same fd twice (a dup)?",
                tap_fds.len(),
                dev.name
            ),
        ));
    }
    for (i, &fd) in vhost_fds.iter().enumerate() {
        let mut features = 0u64;
        sys.ioctl(borrow(fd), &mut Ioctl::VhostGetFeatures(&mut features))
            .map_err(|e| {
                let err = Error::os(e, "ioctl(VHOST_GET_FEATURES)");
                match e {
                    Errno::ENOTTY | Errno::EINVAL => err.with_hint(format!(
                        "{} is not a /dev/vhost-net fd",
                        at("vhostFds", i, fd)
                    )),
                    _ => err.with_hint(format!("{} could not be checked", at("vhostFds", i, fd))),
                }
            })?;
    }
    let features = tun::get_features(sys, borrow(tap_fds[0])).map_err(|e| {
        Error::os(e, "ioctl(TUNGETFEATURES)")
            .with_ifname(dev.name.clone())
            .with_hint("the TUN driver did not report its features")
    })?;

    // Every check passed: make the fds close-on-exec (as every fd vmtap
    // holds is) and take them.
    for &(fd, flags) in &fd_flags {
        if flags & libc::FD_CLOEXEC == 0 {
            sys.fcntl(fd, Fcntl::SetFd(flags | libc::FD_CLOEXEC))
                .map_err(|e| Error::os(e, Fcntl::SetFd(0).name()).with_ifname(dev.name.clone()))?;
        }
    }
    let own = |fds: &[RawFd]| {
        fds.iter()
            // SAFETY: every number is open, was given once (check_adopt), and
            // the caller hands its ownership over with this call; from here on
            // only the Tap closes them.
            .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect()
    };
    Ok(Tap {
        ifname: dev.name,
        tap_fds: own(tap_fds),
        vhost_fds: own(vhost_fds),
        flags: dev.flags,
        features,
        // Link operations act in the caller's namespace, by the device's
        // current name (TUNGETIFF through its first fd).
        netns: None,
        ownerless: false,
        ifindex: std::sync::OnceLock::new(),
        macvtap: None,
    })
}

/// TUNGETIFF and the MAC (SIOCGIFHWADDR on the tun fd itself) of one tap fd.
fn attached(sys: &dyn Sys, fd: BorrowedFd<'_>, what: &str) -> Result<Attached> {
    let (name, flags) = tun::get_iff(sys, fd).map_err(|e| {
        let hint = match e {
            Errno::EBADFD => {
                format!("{what} is a /dev/net/tun fd that is not attached to a device")
            }
            Errno::ENOTTY | Errno::EINVAL => format!("{what} is not a TUN/TAP fd"),
            _ => format!("{what} could not be checked"),
        };
        Error::os(e, "ioctl(TUNGETIFF)").with_hint(hint)
    })?;
    let mut req = IfReq::zeroed();
    sys.ioctl(fd, &mut Ioctl::GetIfHwAddr(&mut req))
        .map_err(|e| {
            Error::os(e, "ioctl(SIOCGIFHWADDR)")
                .with_ifname(name.clone())
                .with_hint(format!("the MAC address of {what} could not be read"))
        })?;
    let mac = link::hwaddr(&req);
    Ok(Attached { name, flags, mac })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;
    use std::os::fd::AsRawFd;

    fn refused(tap: &[RawFd], vhost: &[RawFd]) -> String {
        match adopt_tap(&NoSys, tap, vhost) {
            Err(e @ Error::InvalidArgument { .. }) => format!("{}: {e}", e.code()),
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn bad_fd_lists_are_refused_before_any_syscall() {
        assert!(refused(&[], &[]).starts_with("ERR_OUT_OF_RANGE"));
        assert!(refused(&[-1], &[]).starts_with("ERR_OUT_OF_RANGE"));
        assert!(refused(&[5, 5], &[]).contains("given twice"));
        assert!(refused(&[5], &[5]).contains("given twice"));
        assert!(refused(&[5, 6], &[7]).contains("one fd per tap fd"));
        let many: Vec<RawFd> = (10..10 + 257).collect();
        assert!(refused(&many, &[]).starts_with("ERR_OUT_OF_RANGE"));
    }

    #[test]
    fn fds_that_are_not_taps_are_refused_and_left_open() {
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = adopt_tap(&crate::RealSys, &[file.as_raw_fd()], &[]).unwrap_err();
        assert_eq!(e.code(), "ENOTTY", "{e}");
        assert!(e.to_string().contains("is not a TUN/TAP fd"), "{e}");
        // Still ours: F_GETFD works on it.
        // SAFETY: fcntl(F_GETFD) on an fd this test owns.
        assert!(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFD) } >= 0);
        // A number that is not open (far above anything the test harness opens).
        let e = adopt_tap(&crate::RealSys, &[999_999], &[]).unwrap_err();
        assert_eq!(e.code(), "EBADF", "{e}");
        assert!(e.to_string().contains("is not open"), "{e}");
        // An unattached /dev/net/tun fd (opening the clone device needs no privilege).
        if let Ok(tun) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
        {
            let e = adopt_tap(&crate::RealSys, &[tun.as_raw_fd()], &[]).unwrap_err();
            assert_eq!(e.code(), "EBADFD", "{e}");
            assert!(e.to_string().contains("not attached"), "{e}");
        }
    }
}
