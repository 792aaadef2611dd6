//! Passing fds over a connected Unix stream socket (sendmsg/recvmsg with
//! SCM_RIGHTS), as QEMU's QMP `getfd` and cloud-hypervisor's `add-net` take
//! them. Node's `net.Socket` cannot attach fds to a message; this can.
//!
//! Only the non-blocking syscalls live here: every call is made with
//! `MSG_DONTWAIT` (so the socket's own O_NONBLOCK flag, which belongs to the
//! caller, is never changed) and answers [`Step::WouldBlock`] when the
//! socket is not ready. Waiting for readiness is the caller's job (the Node
//! binding watches the socket on the event loop).
//!
//! * The fds ride on the first byte(s) of `data`; a partial write sends the
//!   rest without fds, so the peer sees `data` whole, fds attached once.
//! * Received fds are close-on-exec (MSG_CMSG_CLOEXEC).
//! * The calls work on a [`StreamSocket`]: a close-on-exec duplicate
//!   (F_DUPFD_CLOEXEC) of the caller's socket fd, and a send carries
//!   duplicates of the fds it passes ([`dup_fds`]), all made where the caller
//!   owns the numbers, at the call. If the caller closes its socket or one of
//!   the fds meanwhile and the number is reused, the duplicates still name
//!   what the caller meant.
//! * A receive buffer is sized by what the socket holds (FIONREAD, at least
//!   64 KiB), not by `max_bytes`, and its allocation failing is an error,
//!   not an abort.

use std::mem::{size_of, zeroed};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::rules;
pub use crate::rules::SCM_MAX_FD;
use crate::sys::{retry_eintr, RealSys, Sys};

/// The outcome of one non-blocking attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Step<T> {
    Done(T),
    /// The socket is not ready (EAGAIN): wait for it, then call again.
    WouldBlock,
}

/// A connected Unix stream socket: vmtap's own duplicate of a caller's fd.
#[derive(Debug)]
pub struct StreamSocket(OwnedFd);

impl StreamSocket {
    /// Duplicate `fd` (close-on-exec) after checking it is a connected Unix
    /// stream socket: EBADF for no fd, ENOTSOCK for anything else. Do it on
    /// the thread that owns `fd`, at the call.
    pub fn dup(fd: RawFd) -> Result<Self> {
        dup_socket(fd).map(StreamSocket)
    }
}

impl AsFd for StreamSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

/// A close-on-exec duplicate of `fd` (F_DUPFD_CLOEXEC); `what` names it in
/// the error.
pub fn dup_fd(fd: RawFd, what: &str) -> Result<OwnedFd> {
    let dup = if fd < 0 {
        // What fcntl answers for any negative number (a BorrowedFd may not
        // hold -1).
        Err(Errno::EBADF)
    } else {
        // SAFETY: fd is not negative (checked above); it is only duplicated
        // here, and if it is not open the duplicate fails with EBADF.
        RealSys.dup_cloexec(unsafe { BorrowedFd::borrow_raw(fd) })
    };
    dup.map_err(|e| {
        let hint = match e {
            Errno::EBADF => format!("{what} ({fd}) is not an open fd"),
            Errno::EMFILE => "too many open files in this process".to_owned(),
            _ => format!("{what} ({fd}) could not be duplicated"),
        };
        Error::os(e, "fcntl(F_DUPFD_CLOEXEC)").with_hint(hint)
    })
}

/// Close-on-exec duplicates of `fds`, made at the call so the numbers are
/// resolved now: a number closed and reused later cannot change what the
/// duplicates name. At most `2 * MAX_QUEUES` (a device's tap and vhost
/// fds) or [`SCM_MAX_FD`] for a send, whichever the caller checks; every
/// number not negative. On failure nothing stays open.
pub fn dup_fds(fds: &[RawFd]) -> Result<Vec<OwnedFd>> {
    rules::check_dup_fds(fds)?;
    fds.iter()
        .enumerate()
        .map(|(i, &fd)| dup_fd(fd, &format!("fds[{i}]")))
        .collect()
}

fn dup_socket(fd: RawFd) -> Result<OwnedFd> {
    let owned = dup_fd(fd, "the socket")?;
    let d = owned.as_raw_fd();
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

/// Run one socket call with `MSG_DONTWAIT`: again on EINTR; EAGAIN is
/// [`Step::WouldBlock`].
fn attempt(syscall: &'static str, call: impl FnMut() -> isize) -> Result<Step<usize>> {
    match retry_eintr(call) {
        Ok(n) => Ok(Step::Done(n)),
        Err(Errno::EAGAIN) => Ok(Step::WouldBlock),
        Err(e) => Err(Error::os(e, syscall)),
    }
}

fn cmsg_space(nfds: usize) -> usize {
    if nfds == 0 {
        return 0;
    }
    // SAFETY: pure arithmetic.
    unsafe { libc::CMSG_SPACE((nfds * size_of::<RawFd>()) as u32) as usize }
}

/// A message being sent: `data` with fds attached to its first byte(s).
/// The fds are duplicates owned here ([`dup_fds`]); they are closed once
/// the kernel has taken them with the first part of `data` (or when this is
/// dropped).
#[derive(Debug)]
pub struct Send {
    data: Vec<u8>,
    fds: Vec<OwnedFd>,
    sent: usize,
}

impl Send {
    /// Check the message ([`rules::check_send`]) before any syscall.
    pub fn new(data: Vec<u8>, fds: Vec<OwnedFd>) -> Result<Self> {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        rules::check_send(data.len(), &raw)?;
        Ok(Send { data, fds, sent: 0 })
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> usize {
        self.sent
    }

    /// Send as much as the socket takes now: `Done(total)` when all of
    /// `data` went, `WouldBlock` when the socket is full (call again once it
    /// is writable).
    pub fn try_send(&mut self, sock: &StreamSocket) -> Result<Step<usize>> {
        let fd = sock.0.as_raw_fd();
        while self.sent < self.data.len() {
            let rest = &self.data[self.sent..];
            let fds: Vec<RawFd> = self.fds.iter().map(|f| f.as_raw_fd()).collect();
            let mut cmsg_buf = vec![0u8; cmsg_space(fds.len())];
            let step = attempt("sendmsg", || {
                let mut iov = libc::iovec {
                    iov_base: rest.as_ptr() as *mut libc::c_void,
                    iov_len: rest.len(),
                };
                // SAFETY: msghdr is plain data; zeroed is a valid empty header.
                let mut msg: libc::msghdr = unsafe { zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                if !fds.is_empty() {
                    msg.msg_control = cmsg_buf.as_mut_ptr().cast();
                    msg.msg_controllen = cmsg_buf.len() as _;
                    // SAFETY: the buffer is CMSG_SPACE(n * 4) bytes, enough
                    // for one header and the fd array.
                    unsafe {
                        let c = libc::CMSG_FIRSTHDR(&msg);
                        (*c).cmsg_level = libc::SOL_SOCKET;
                        (*c).cmsg_type = libc::SCM_RIGHTS;
                        (*c).cmsg_len =
                            libc::CMSG_LEN(size_of::<RawFd>() as u32 * fds.len() as u32) as _;
                        std::ptr::copy_nonoverlapping(
                            fds.as_ptr(),
                            libc::CMSG_DATA(c).cast::<RawFd>(),
                            fds.len(),
                        );
                    }
                }
                // SAFETY: msg points at live buffers for the duration of the call.
                unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
            })
            .map_err(send_hint)?;
            match step {
                Step::WouldBlock => return Ok(Step::WouldBlock),
                Step::Done(n) => {
                    self.sent += n;
                    // The kernel holds its own references to what it took.
                    self.fds.clear();
                }
            }
        }
        Ok(Step::Done(self.sent))
    }
}

fn send_hint(err: Error) -> Error {
    match err.errno() {
        Some(Errno::EBADF) => err.with_hint("one of the fds to send is not open"),
        Some(Errno::EPIPE | Errno::ECONNRESET) => err.with_hint("the peer closed the connection"),
        Some(Errno::ETOOMANYREFS) => err.with_hint("too many fds in flight to this peer"),
        _ => err,
    }
}

/// What [`try_recv`] got.
#[derive(Debug)]
pub struct Received {
    pub data: Vec<u8>,
    /// The fds that came with the data, close-on-exec, owned by the caller.
    pub fds: Vec<OwnedFd>,
    /// The peer sent more fds than `max_fds`: the kernel closed the rest.
    pub truncated: bool,
}

/// The bytes waiting in `fd`'s receive queue (FIONREAD), or `None` when the
/// socket cannot say.
fn queued(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r == 0 && n >= 0).then_some(n as usize)
}

/// Receive one message (up to `max_bytes`) and the fds attached to it (up
/// to `max_fds`) from the connected Unix stream socket `sock`, without
/// waiting: `WouldBlock` when nothing is there. Empty data means the peer
/// closed the connection. The buffer holds what the socket has queued (at
/// least 64 KiB, at most `max_bytes`), so a large `max_bytes` costs nothing
/// until that much arrives.
pub fn try_recv(sock: &StreamSocket, max_bytes: usize, max_fds: usize) -> Result<Step<Received>> {
    rules::check_recv(max_bytes, max_fds)?;
    let fd = sock.0.as_raw_fd();
    // What is queued, and at least 64 KiB (what arrives between FIONREAD
    // and recvmsg is read too), never more than max_bytes.
    let want = queued(fd).unwrap_or(0).max(1 << 16).min(max_bytes);
    let mut data = crate::error::try_zeroed(want, "the received message")?;
    let mut cmsg_buf = vec![0u8; cmsg_space(max_fds.max(1))];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let step = attempt("recvmsg", || {
        // SAFETY: as above; rebuilt for every attempt.
        msg = unsafe { zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if max_fds > 0 {
            msg.msg_control = cmsg_buf.as_mut_ptr().cast();
            msg.msg_controllen = cmsg_buf.len() as _;
        }
        // SAFETY: msg points at live buffers.
        unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) }
    })?;
    let n = match step {
        Step::WouldBlock => return Ok(Step::WouldBlock),
        Step::Done(n) => n,
    };
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
    Ok(Step::Done(Received {
        data,
        fds,
        truncated: extra || msg.msg_flags & libc::MSG_CTRUNC != 0,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::{Read, Seek, Write};
    use std::os::unix::net::UnixStream;

    fn done<T: std::fmt::Debug>(s: Result<Step<T>>) -> T {
        match s.unwrap() {
            Step::Done(v) => v,
            Step::WouldBlock => panic!("would block"),
        }
    }

    fn send(a: &UnixStream, data: &[u8], fds: &[RawFd]) -> Result<Step<usize>> {
        Send::new(data.to_vec(), dup_fds(fds)?)?.try_send(&sock(a))
    }

    #[test]
    fn fds_travel_and_arrive_close_on_exec() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut f = tempfile();
        f.write_all(b"hello").unwrap();
        let sent = done(send(
            &a,
            b"{\"execute\":\"getfd\"}",
            &[f.as_raw_fd(), f.as_raw_fd()],
        ));
        assert_eq!(sent, 19);
        let r = done(try_recv(&sock(&b), 64, 4));
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
        done(send(&a, b"x", &[f.as_raw_fd(); 3]));
        let r = done(try_recv(&sock(&b), 8, 1));
        assert!(r.truncated);
        assert_eq!(r.fds.len(), 1);
    }

    #[test]
    fn nothing_to_read_and_a_full_socket_would_block_and_never_wait() {
        let (a, b) = UnixStream::pair().unwrap();
        // Blocking sockets: MSG_DONTWAIT still answers at once, and the
        // caller's O_NONBLOCK flag is left alone.
        assert!(try_recv(&sock(&b), 16, 1).unwrap().is_would_block());
        let mut s = Send::new(vec![7u8; 64 << 20], Vec::new()).unwrap();
        assert_eq!(s.try_send(&sock(&a)).unwrap(), Step::WouldBlock);
        assert!(
            s.sent() > 0 && s.sent() < 64 << 20,
            "partly sent: {}",
            s.sent()
        );
        // SAFETY: F_GETFL on a live fd.
        let fl = unsafe { libc::fcntl(a.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0);
    }

    impl<T> Step<T> {
        fn is_would_block(&self) -> bool {
            matches!(self, Step::WouldBlock)
        }
    }

    #[test]
    fn a_large_message_is_sent_whole_across_partial_writes_fds_once() {
        let (a, b) = UnixStream::pair().unwrap();
        let big: Vec<u8> = (0..(4u32 << 20)).map(|i| i as u8).collect();
        let f = tempfile();
        let expect = big.clone();
        let reader = std::thread::spawn(move || {
            let mut first = loop {
                match try_recv(&sock(&b), 1 << 16, 1).unwrap() {
                    Step::Done(r) => break r,
                    Step::WouldBlock => std::thread::yield_now(),
                }
            };
            assert_eq!(first.fds.len(), 1);
            let mut rest = Vec::new();
            let mut b = b;
            b.read_to_end(&mut rest).unwrap();
            first.data.extend(rest);
            first.data
        });
        let mut s = Send::new(big, dup_fds(&[f.as_raw_fd()]).unwrap()).unwrap();
        let sock_a = sock(&a);
        let sent = loop {
            match s.try_send(&sock_a).unwrap() {
                Step::Done(n) => break n,
                Step::WouldBlock => {
                    let mut p = libc::pollfd {
                        fd: a.as_raw_fd(),
                        events: libc::POLLOUT,
                        revents: 0,
                    };
                    // SAFETY: one pollfd.
                    unsafe { libc::poll(&mut p, 1, -1) };
                }
            }
        };
        assert_eq!(sent, expect.len());
        drop((sock_a, a));
        assert_eq!(reader.join().unwrap(), expect);
    }

    #[test]
    fn the_receive_buffer_is_what_arrived_not_max_bytes() {
        let (a, b) = UnixStream::pair().unwrap();
        done(send(&a, b"abc", &[]));
        let r = done(try_recv(&sock(&b), rules::MAX_RECV_BYTES, 0));
        assert_eq!(r.data, b"abc");
        assert!(
            r.data.capacity() < 1 << 20,
            "capacity {}",
            r.data.capacity()
        );
        drop(a);
        let eof = done(try_recv(&sock(&b), rules::MAX_RECV_BYTES, 0));
        assert!(eof.data.is_empty(), "EOF");
    }

    #[test]
    fn duplicates_name_the_file_even_after_the_number_is_reused() {
        let (a, b) = UnixStream::pair().unwrap();
        let mut first = tempfile();
        first.write_all(b"first").unwrap();
        let n = first.as_raw_fd();
        let dups = dup_fds(&[n]).unwrap();
        drop(first);
        // The number is free: the next file gets it.
        let mut second = tempfile();
        second.write_all(b"second").unwrap();
        assert_eq!(second.as_raw_fd(), n);
        done(Send::new(b"x".to_vec(), dups).unwrap().try_send(&sock(&a)));
        let r = done(try_recv(&sock(&b), 8, 1));
        let mut got = File::from(r.fds.into_iter().next().unwrap());
        got.rewind().unwrap();
        let mut s = String::new();
        got.read_to_string(&mut s).unwrap();
        assert_eq!(s, "first");
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
            Send::new(Vec::new(), Vec::new()).unwrap_err().code(),
            "ERR_INVALID_ARG_VALUE"
        );
        let many: Vec<OwnedFd> = (0..254)
            .map(|_| dup_fd(f.as_raw_fd(), "f").unwrap())
            .collect();
        assert_eq!(
            Send::new(b"x".to_vec(), many).unwrap_err().code(),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            StreamSocket::dup(f.as_raw_fd()).unwrap_err().code(),
            "ENOTSOCK"
        );
        assert_eq!(StreamSocket::dup(-1).unwrap_err().code(), "EBADF");
        assert_eq!(StreamSocket::dup(99999).unwrap_err().code(), "EBADF");
        assert_eq!(dup_fds(&[9999]).unwrap_err().code(), "EBADF");
        assert_eq!(dup_fds(&[-1]).unwrap_err().code(), "ERR_OUT_OF_RANGE");
        assert_eq!(send(&a, b"x", &[9999]).unwrap_err().code(), "EBADF");
    }

    fn tempfile() -> File {
        let path = std::env::temp_dir().join(format!(
            "vmtap-fdpass-{}-{:?}-{}",
            std::process::id(),
            std::thread::current().id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
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
