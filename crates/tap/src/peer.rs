//! Who is at the other end of a connected Unix socket: the kernel's record
//! of the peer (`SO_PEERCRED`, `SO_PEERGROUPS`), taken when the peer called
//! `connect(2)` (or `socketpair(2)`), never anything the peer says. This is
//! what a privileged broker decides on (see the broker in the TypeScript
//! layer and SECURITY.md).
//!
//! * pid, uid and gid are the peer's pid and *effective* uid and gid at
//!   connect time, translated into the caller's pid and user namespaces. A
//!   uid with no mapping there reads as the overflow uid (65534), a pid that
//!   the caller's pid namespace cannot see as 0.
//! * The supplementary groups come from `SO_PEERGROUPS` (Linux 4.13), taken
//!   at the same moment: no `/proc/<pid>` look-up, so no race with a pid
//!   that is reused. On an older kernel they are unknown (`None`).

use std::mem::size_of;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::sys::{SockOpt, Sys};

/// The kernel's record of a Unix socket's peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCredentials {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    /// The supplementary groups, or `None` when the kernel cannot say
    /// (`SO_PEERGROUPS` is Linux 4.13 and later).
    pub groups: Option<Vec<u32>>,
}

/// The most supplementary groups Linux allows (`NGROUPS_MAX`).
const NGROUPS_MAX: usize = 65536;
/// The first buffer for `SO_PEERGROUPS`, doubled on ERANGE up to NGROUPS_MAX.
const FIRST_GROUPS: usize = 64;

/// The peer of the connected Unix socket `fd`. ENOTSOCK for anything but a
/// socket, EAFNOSUPPORT for a socket that is not `AF_UNIX` (the kernel keeps
/// no peer credentials for them and would report the overflow ids),
/// ENOTCONN for a socket without a peer.
pub fn peer_credentials(sys: &dyn Sys, fd: BorrowedFd<'_>) -> Result<PeerCredentials> {
    let mut domain = [0u8; size_of::<libc::c_int>()];
    let n = getsockopt(sys, fd, SockOpt::Domain, &mut domain)?;
    if n != domain.len() || libc::c_int::from_ne_bytes(domain) != libc::AF_UNIX {
        return Err(
            Error::os(Errno::EAFNOSUPPORT, SockOpt::Domain.name()).with_hint(
                "peer credentials exist for Unix sockets only; this socket is of another family",
            ),
        );
    }
    let mut raw = [0u8; size_of::<libc::ucred>()];
    let n = getsockopt(sys, fd, SockOpt::PeerCred, &mut raw)?;
    if n != raw.len() {
        return Err(Error::os(Errno::EPROTO, SockOpt::PeerCred.name())
            .with_hint(format!("the kernel returned {n} bytes, not a struct ucred")));
    }
    let word = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&raw[i * 4..i * 4 + 4]);
        b
    };
    let pid = i32::from_ne_bytes(word(0));
    let uid = u32::from_ne_bytes(word(1));
    let gid = u32::from_ne_bytes(word(2));
    // An unconnected socket has no peer: the kernel reports uid and gid -1.
    if uid == u32::MAX || gid == u32::MAX {
        return Err(Error::os(Errno::ENOTCONN, SockOpt::PeerCred.name())
            .with_hint("the socket has no peer (it is not connected)"));
    }
    let groups = peer_groups(sys, fd)?;
    Ok(PeerCredentials {
        pid,
        uid,
        gid,
        groups,
    })
}

fn getsockopt(sys: &dyn Sys, fd: BorrowedFd<'_>, opt: SockOpt, buf: &mut [u8]) -> Result<usize> {
    sys.getsockopt(fd, opt, buf).map_err(|e| {
        let err = Error::os(e, opt.name());
        match e {
            Errno::ENOTSOCK => err.with_hint("the fd is not a socket"),
            Errno::EBADF => err.with_hint("the fd is not open"),
            _ => err,
        }
    })
}

/// `SO_PEERGROUPS`, growing the buffer on ERANGE; `None` on a kernel
/// without it (ENOPROTOOPT).
fn peer_groups(sys: &dyn Sys, fd: BorrowedFd<'_>) -> Result<Option<Vec<u32>>> {
    let mut cap = FIRST_GROUPS;
    loop {
        let mut buf = vec![0u8; cap * size_of::<u32>()];
        match sys.getsockopt(fd, SockOpt::PeerGroups, &mut buf) {
            Ok(n) => {
                if n % size_of::<u32>() != 0 || n > buf.len() {
                    return Err(
                        Error::os(Errno::EPROTO, SockOpt::PeerGroups.name()).with_hint(format!(
                            "the kernel returned {n} bytes, not an array of gids"
                        )),
                    );
                }
                let groups = buf[..n]
                    .chunks_exact(size_of::<u32>())
                    .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                return Ok(Some(groups));
            }
            Err(Errno::ERANGE) if cap < NGROUPS_MAX => cap *= 2,
            Err(Errno::ENOPROTOOPT) => return Ok(None),
            Err(e) => return Err(Error::os(e, SockOpt::PeerGroups.name())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultSys;
    use crate::sys::{Call, RealSys};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn ids() -> (u32, u32) {
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        unsafe { (libc::geteuid(), libc::getegid()) }
    }

    #[test]
    fn a_socketpair_peer_is_this_process() {
        let (a, _b) = UnixStream::pair().unwrap();
        let c = peer_credentials(&RealSys, a.as_fd()).unwrap();
        let (uid, gid) = ids();
        assert_eq!(c.pid as u32, std::process::id());
        assert_eq!((c.uid, c.gid), (uid, gid));
        // getgroups(2) of this process: SO_PEERGROUPS took the same list.
        // SAFETY: getgroups(0, NULL) returns the count; the second call fills
        // a buffer of that size.
        let mine = unsafe {
            let n = libc::getgroups(0, std::ptr::null_mut());
            let mut v = vec![0 as libc::gid_t; n as usize];
            let n = libc::getgroups(n, v.as_mut_ptr());
            v.truncate(n as usize);
            v
        };
        let mut got = c.groups.expect("this kernel has SO_PEERGROUPS");
        let mut want: Vec<u32> = mine;
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn sockets_without_a_unix_peer_are_refused() {
        let unconnected = std::os::unix::net::UnixDatagram::unbound().unwrap();
        let e = peer_credentials(&RealSys, unconnected.as_fd()).unwrap_err();
        assert_eq!(e.code(), "ENOTCONN", "{e}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = peer_credentials(&RealSys, udp.as_fd()).unwrap_err();
        assert_eq!(e.code(), "EAFNOSUPPORT", "{e}");
        let file = std::fs::File::open("/dev/null").unwrap();
        let e = peer_credentials(&RealSys, file.as_fd()).unwrap_err();
        assert_eq!(e.code(), "ENOTSOCK", "{e}");
        assert!(e.to_string().contains("getsockopt(SO_DOMAIN)"), "{e}");
    }

    #[test]
    fn every_getsockopt_is_fault_injectable() {
        let (a, _b) = UnixStream::pair().unwrap();
        let expected = [
            "getsockopt(SO_DOMAIN)",
            "getsockopt(SO_PEERCRED)",
            "getsockopt(SO_PEERGROUPS)",
        ];
        let all = FaultSys::new(RealSys, 0, Errno::EIO);
        peer_credentials(&all, a.as_fd()).unwrap();
        let labels: Vec<Call> = expected.iter().map(|l| Call::Getsockopt(l)).collect();
        assert_eq!(all.calls(), labels);
        for (k, label) in expected.iter().enumerate() {
            let sys = FaultSys::new(RealSys, k + 1, Errno::EIO);
            let e = peer_credentials(&sys, a.as_fd()).unwrap_err();
            assert_eq!(e.code(), "EIO", "{label}: {e}");
            assert!(e.to_string().contains(label), "{label}: {e}");
        }
        // A kernel without SO_PEERGROUPS: the groups are unknown, not an error.
        let old = FaultSys::new(RealSys, 3, Errno::ENOPROTOOPT);
        assert_eq!(peer_credentials(&old, a.as_fd()).unwrap().groups, None);
    }

    /// A socket whose peer has more groups than the first buffer holds.
    struct ManyGroups(usize);

    impl Sys for ManyGroups {
        fn open(
            &self,
            _: &std::ffi::CStr,
            _: libc::c_int,
        ) -> std::result::Result<std::os::fd::OwnedFd, Errno> {
            unreachable!()
        }
        fn control_socket(&self) -> std::result::Result<std::os::fd::OwnedFd, Errno> {
            unreachable!()
        }
        fn ioctl(
            &self,
            _: BorrowedFd<'_>,
            _: &mut crate::sys::Ioctl<'_>,
        ) -> std::result::Result<(), Errno> {
            unreachable!()
        }
        fn getsockopt(
            &self,
            _: BorrowedFd<'_>,
            opt: SockOpt,
            buf: &mut [u8],
        ) -> std::result::Result<usize, Errno> {
            match opt {
                SockOpt::Domain => buf.copy_from_slice(&libc::AF_UNIX.to_ne_bytes()),
                SockOpt::PeerCred => {
                    for (i, v) in [7u32, 1000, 1000].iter().enumerate() {
                        buf[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
                    }
                }
                SockOpt::PeerGroups => {
                    let need = self.0 * 4;
                    if buf.len() < need {
                        return Err(Errno::ERANGE);
                    }
                    for i in 0..self.0 {
                        buf[i * 4..i * 4 + 4].copy_from_slice(&(i as u32).to_ne_bytes());
                    }
                    return Ok(need);
                }
            }
            Ok(buf.len())
        }
    }

    #[test]
    fn the_groups_buffer_grows_until_it_fits() {
        let (a, _b) = UnixStream::pair().unwrap();
        for n in [0, 1, 64, 65, 1000, 65536] {
            let c = peer_credentials(&ManyGroups(n), a.as_fd()).unwrap();
            assert_eq!((c.pid, c.uid, c.gid), (7, 1000, 1000));
            assert_eq!(c.groups.unwrap(), (0..n as u32).collect::<Vec<_>>(), "{n}");
        }
        let e = peer_credentials(&ManyGroups(65537), a.as_fd()).unwrap_err();
        assert_eq!(e.code(), "ERANGE", "{e}");
    }
}
