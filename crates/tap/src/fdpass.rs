//! Passing fds over a connected Unix stream socket (sendmsg/recvmsg with
//! SCM_RIGHTS), as QEMU's QMP `getfd` and cloud-hypervisor's `add-net` take
//! them. Node's `net.Socket` cannot attach fds to a message; this can.
//!
//! * The fds ride on the first byte(s) of `data`; a partial write sends the
//!   rest without fds, so the peer sees `data` whole, fds attached once.
//! * On a non-blocking socket (every `net.Socket` is one) EAGAIN waits in
//!   poll(2) for the socket to become ready — no busy loop — up to a timeout.
//! * Received fds are close-on-exec (MSG_CMSG_CLOEXEC).
//! * The calls work on a [`StreamSocket`]: a close-on-exec duplicate
//!   (F_DUPFD_CLOEXEC) of the caller's socket fd, made where the caller owns
//!   the fd (the JS thread) before the work moves to another thread, and
//!   closed when the work is done. If the caller closes its socket meanwhile,
//!   the number cannot be reused under us.

use std::mem::{size_of, zeroed};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::rules;
pub use crate::rules::SCM_MAX_FD;

/// A connected Unix stream socket: vmtap's own duplicate of a caller's fd.
#[derive(Debug)]
pub struct StreamSocket(OwnedFd);

impl StreamSocket {
    /// Duplicate `fd` (close-on-exec) after checking it is a connected Unix
    /// stream socket: EBADF for no fd, ENOTSOCK for anything else. Do it on
    /// the thread that owns `fd`, before handing the work elsewhere.
    pub fn dup(fd: RawFd) -> Result<Self> {
        dup_socket(fd).map(StreamSocket)
    }
}

fn dup_socket(fd: RawFd) -> Result<OwnedFd> {
    // SAFETY: fcntl on a caller-provided number; failure is reported.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if d < 0 {
        let e = Errno::last();
        return Err(Error::os(e, "fcntl(F_DUPFD_CLOEXEC)")
            .with_hint(format!("fd {fd} is not an open socket")));
    }
    // SAFETY: a fresh duplicate that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(d) };
    let mut ty: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt with a properly sized out-parameter.
    let r = unsafe {
        libc::getsockopt(
            d,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut ty as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if r != 0 {
        let e = Errno::last();
        return Err(
            Error::os(e, "getsockopt(SO_TYPE)").with_hint(format!("fd {fd} is not a socket"))
        );
    }
    // SAFETY: sockaddr_storage is plain data; all zeros is a valid value.
    let mut addr: libc::sockaddr_storage = unsafe { zeroed() };
    let mut alen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: getsockname with a properly sized buffer.
    let r = unsafe {
        libc::getsockname(
            d,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut alen,
        )
    };
    if r != 0 || addr.ss_family != libc::AF_UNIX as libc::sa_family_t || ty != libc::SOCK_STREAM {
        return Err(Error::os(Errno::ENOTSOCK, "getsockname").with_hint(format!(
            "fd {fd} is not a Unix stream socket; fds can only travel over one"
        )));
    }
    Ok(owned)
}

/// Wait until `fd` is ready for `events`, or the deadline passes (ETIMEDOUT).
fn wait(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
    syscall: &'static str,
) -> Result<()> {
    loop {
        let timeout = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Error::os(Errno::ETIMEDOUT, syscall)
                        .with_hint("the peer did not become ready in time (timeoutMs)"));
                }
                left.as_millis().min(i32::MAX as u128) as libc::c_int
            }
        };
        let mut p = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        // SAFETY: one pollfd.
        let r = unsafe { libc::poll(&mut p, 1, timeout) };
        if r < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(Error::os(e, "poll")),
            }
        }
        if r > 0 {
            return Ok(()); // ready, or an error/hangup the next call reports
        }
    }
}

/// Run one socket call until it goes through: again on EINTR, and on EAGAIN
/// after waiting in poll(2) for `events`, up to the deadline.
fn until_ready(
    fd: RawFd,
    events: libc::c_short,
    deadline: Option<Instant>,
    syscall: &'static str,
    mut call: impl FnMut() -> isize,
) -> Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        match Errno::last() {
            Errno::EINTR => {}
            Errno::EAGAIN => wait(fd, events, deadline, syscall)?,
            e => return Err(Error::os(e, syscall)),
        }
    }
}

/// Send `data` with `fds` attached over `sock`. Returns the number of bytes
/// sent (all of `data`).
pub fn send_fds(
    sock: &StreamSocket,
    data: &[u8],
    fds: &[RawFd],
    timeout: Option<Duration>,
) -> Result<usize> {
    rules::check_send(data.len(), fds)?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let fd = sock.0.as_raw_fd();
    let mut sent = 0usize;
    let mut cmsg_buf = vec![0u8; cmsg_space(fds.len())];
    while sent < data.len() {
        let rest = &data[sent..];
        let with_fds = sent == 0 && !fds.is_empty();
        let n = until_ready(fd, libc::POLLOUT, deadline, "sendmsg", || {
            let mut iov = libc::iovec {
                iov_base: rest.as_ptr() as *mut libc::c_void,
                iov_len: rest.len(),
            };
            // SAFETY: msghdr is plain data; zeroed is a valid empty header.
            let mut msg: libc::msghdr = unsafe { zeroed() };
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            if with_fds {
                msg.msg_control = cmsg_buf.as_mut_ptr().cast();
                msg.msg_controllen = cmsg_buf.len() as _;
                // SAFETY: the buffer is CMSG_SPACE(n * 4) bytes, enough for one
                // header and the fd array.
                unsafe {
                    let c = libc::CMSG_FIRSTHDR(&msg);
                    (*c).cmsg_level = libc::SOL_SOCKET;
                    (*c).cmsg_type = libc::SCM_RIGHTS;
                    (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
                    std::ptr::copy_nonoverlapping(
                        fds.as_ptr(),
                        libc::CMSG_DATA(c).cast::<RawFd>(),
                        fds.len(),
                    );
                }
            }
            // SAFETY: msg points at live buffers for the duration of the call.
            unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) }
        })
        .map_err(|err| match err.errno() {
            Some(Errno::EBADF) => err.with_hint("one of the fds to send is not open"),
            Some(Errno::EPIPE | Errno::ECONNRESET) => {
                err.with_hint("the peer closed the connection")
            }
            Some(Errno::ETOOMANYREFS) => err.with_hint("too many fds in flight to this peer"),
            _ => err,
        })?;
        sent += n;
    }
    Ok(sent)
}

fn cmsg_space(nfds: usize) -> usize {
    if nfds == 0 {
        return 0;
    }
    // SAFETY: pure arithmetic.
    unsafe { libc::CMSG_SPACE((nfds * size_of::<RawFd>()) as u32) as usize }
}

/// What [`recv_fds`] got.
#[derive(Debug)]
pub struct Received {
    pub data: Vec<u8>,
    /// The fds that came with the data, close-on-exec, owned by the caller.
    pub fds: Vec<OwnedFd>,
    /// The peer sent more fds than `max_fds`: the kernel closed the rest.
    pub truncated: bool,
}

/// Receive one message (up to `max_bytes`) and the fds attached to it (up
/// to `max_fds`) from the connected Unix stream socket `sock`. Empty data
/// means the peer closed the connection.
pub fn recv_fds(
    sock: &StreamSocket,
    max_bytes: usize,
    max_fds: usize,
    timeout: Option<Duration>,
) -> Result<Received> {
    rules::check_recv(max_bytes, max_fds)?;
    let deadline = timeout.map(|t| Instant::now() + t);
    let fd = sock.0.as_raw_fd();
    let mut data = vec![0u8; max_bytes];
    let mut cmsg_buf = vec![0u8; cmsg_space(max_fds.max(1))];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let n = until_ready(fd, libc::POLLIN, deadline, "recvmsg", || {
        // SAFETY: as above; rebuilt for every attempt.
        msg = unsafe { zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if max_fds > 0 {
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = cmsg_buf.len() as _;
        }
        // SAFETY: msg points at live buffers.
        unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC) }
    })?;
    let mut fds = Vec::new();
    // SAFETY: the CMSG_* walk stays within msg_control/msg_controllen that
    // recvmsg filled; each SCM_RIGHTS fd is a new descriptor the kernel
    // installed for this process, owned by nothing else, so it is taken once.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                let bytes = (*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                let p = libc::CMSG_DATA(c).cast::<RawFd>();
                for i in 0..bytes / size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(p.add(i).read_unaligned()));
                }
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    data.truncate(n);
    // The control buffer is aligned up and may hold a few more than
    // max_fds: keep the promise, close the extras.
    let extra = fds.len() > max_fds;
    fds.truncate(max_fds);
    Ok(Received {
        data,
        fds,
        truncated: extra || msg.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn fds_travel_and_arrive_close_on_exec() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = tempfile();
        f.write_all(b"hello").unwrap();
        let sent = send_fds(
            &sock(&a),
            b"{\"execute\":\"getfd\"}",
            &[f.as_raw_fd(), f.as_raw_fd()],
            None,
        )
        .unwrap();
        assert_eq!(sent, 19);
        let r = recv_fds(&sock(&b), 64, 4, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(r.data, b"{\"execute\":\"getfd\"}");
        assert_eq!(r.fds.len(), 2);
        assert!(!r.truncated);
        for fd in &r.fds {
            // SAFETY: fcntl F_GETFD on an fd we own.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
        let mut got = File::from(r.fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello", "the received fd is the same open file");
    }

    #[test]
    fn too_many_fds_for_the_receiver_are_reported_truncated() {
        let (a, b) = UnixStream::pair().unwrap();
        let f = tempfile();
        send_fds(&sock(&a), b"x", &[f.as_raw_fd(); 3], None).unwrap();
        let r = recv_fds(&sock(&b), 8, 1, None).unwrap();
        assert!(r.truncated);
        assert_eq!(r.fds.len(), 1);
    }

    #[test]
    fn nonblocking_full_socket_waits_instead_of_spinning_then_times_out() {
        let (a, _b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let big = vec![7u8; 64 << 20];
        let e = send_fds(&sock(&a), &big, &[], Some(Duration::from_millis(200))).unwrap_err();
        assert_eq!(e.code(), "ETIMEDOUT");
    }

    #[test]
    fn a_large_message_is_sent_whole_across_partial_writes() {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let big: Vec<u8> = (0..(4u32 << 20)).map(|i| i as u8).collect();
        let f = tempfile();
        let reader = std::thread::spawn(move || {
            let mut first = recv_fds(&sock(&b), 1 << 16, 1, None).unwrap();
            assert_eq!(first.fds.len(), 1);
            let mut rest = Vec::new();
            let mut b = b;
            b.read_to_end(&mut rest).unwrap();
            first.data.extend(rest);
            first.data
        });
        let sent = send_fds(
            &sock(&a),
            &big,
            &[f.as_raw_fd()],
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        assert_eq!(sent, big.len());
        drop(a);
        assert_eq!(reader.join().unwrap(), big);
    }

    /// vmtap's duplicate of a test socket.
    fn sock(s: &UnixStream) -> StreamSocket {
        StreamSocket::dup(s.as_raw_fd()).unwrap()
    }

    #[test]
    fn refuses_bad_arguments_and_non_sockets() {
        let f = tempfile();
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            send_fds(&sock(&a), b"", &[], None).unwrap_err().code(),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            send_fds(&sock(&a), b"x", &[0; 254], None)
                .unwrap_err()
                .code(),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            StreamSocket::dup(f.as_raw_fd()).unwrap_err().code(),
            "ENOTSOCK"
        );
        assert_eq!(StreamSocket::dup(-1).unwrap_err().code(), "EBADF");
        assert_eq!(
            send_fds(&sock(&a), b"x", &[9999], None).unwrap_err().code(),
            "EBADF"
        );
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!(
            "vmtap-fdpass-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }
}
