//! Fault injection for tests: [`FaultSys`] wraps a [`Sys`], records every
//! call and fails the k-th one with a chosen errno (the way Ganeti's tests
//! inject `_ioctl` and `_features_fn`); [`NoSys`] panics on any call, to
//! show that a check runs before any syscall. Not used by the library itself.

use std::collections::HashMap;
use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::c_int;
use nix::errno::Errno;

use crate::sys::{Call, Ioctl, Sys};

/// A [`Sys`] that fails call number `fail_at` (1-based; 0 = never).
pub struct FaultSys<S: Sys> {
    inner: S,
    fail_at: usize,
    errno: Errno,
    count: AtomicUsize,
    calls: Mutex<Vec<Call>>,
    /// The label of the last request sent on each netlink socket, for its receives.
    netlink_requests: Mutex<HashMap<RawFd, &'static str>>,
}

impl<S: Sys> FaultSys<S> {
    pub fn new(inner: S, fail_at: usize, errno: Errno) -> Self {
        FaultSys {
            inner,
            fail_at,
            errno,
            count: AtomicUsize::new(0),
            calls: Mutex::new(Vec::new()),
            netlink_requests: Mutex::new(HashMap::new()),
        }
    }

    /// Every call made so far, in order (including the failed one).
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    /// The call that was failed, if the count reached it.
    pub fn failed_call(&self) -> Option<Call> {
        if self.fail_at == 0 {
            return None;
        }
        self.calls().get(self.fail_at - 1).cloned()
    }

    fn enter(&self, call: Call) -> Result<(), Errno> {
        self.calls.lock().unwrap().push(call);
        let n = self.count.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.fail_at {
            Err(self.errno)
        } else {
            Ok(())
        }
    }
}

impl<S: Sys> Sys for FaultSys<S> {
    fn open(&self, path: &CStr, flags: c_int) -> Result<OwnedFd, Errno> {
        self.enter(Call::Open(path.to_string_lossy().into_owned()))?;
        self.inner.open(path, flags)
    }

    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        self.enter(Call::Socket)?;
        self.inner.control_socket()
    }

    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        self.enter(Call::Ioctl(op.name()))?;
        self.inner.ioctl(fd, op)
    }

    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        self.enter(Call::NetlinkSocket)?;
        self.inner.netlink_socket()
    }

    fn netlink_send(&self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        let label = crate::netlink::request_label(msg);
        let mut requests = self.netlink_requests.lock().unwrap();
        requests.insert(fd.as_raw_fd(), label);
        drop(requests);
        self.enter(Call::NetlinkSend(label))?;
        self.inner.netlink_send(fd, msg)
    }

    fn netlink_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        let requests = self.netlink_requests.lock().unwrap();
        let label = requests.get(&fd.as_raw_fd()).copied().unwrap_or("netlink");
        drop(requests);
        self.enter(Call::NetlinkRecv(label))?;
        self.inner.netlink_recv(fd, buf)
    }

    fn read_frame(&self, fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
        self.enter(Call::ReadFrame)?;
        self.inner.read_frame(fd, buf)
    }

    fn write_frame(&self, fd: BorrowedFd<'_>, parts: &[&[u8]]) -> Result<usize, Errno> {
        self.enter(Call::WriteFrame)?;
        self.inner.write_frame(fd, parts)
    }
}

/// A [`Sys`] that panics on any call: what is refused with it was refused
/// before any syscall.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoSys;

impl Sys for NoSys {
    fn open(&self, path: &CStr, _: c_int) -> Result<OwnedFd, Errno> {
        panic!("unexpected syscall: open({path:?})")
    }

    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        panic!("unexpected syscall: socket")
    }

    fn ioctl(&self, _: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        panic!("unexpected syscall: {}", op.name())
    }

    fn read_frame(&self, _: BorrowedFd<'_>, _: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
        panic!("unexpected syscall: read")
    }

    fn write_frame(&self, _: BorrowedFd<'_>, _: &[&[u8]]) -> Result<usize, Errno> {
        panic!("unexpected syscall: write")
    }
}
