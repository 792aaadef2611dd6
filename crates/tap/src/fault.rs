//! Fault injection for tests: [`FaultSys`] wraps a [`Sys`], records every
//! call and fails the k-th one with a chosen errno (the way Ganeti's tests
//! inject `_ioctl` and `_features_fn`); [`NoSys`] panics on any call, to
//! show that a check runs before any syscall. Not used by the library itself.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use libc::c_int;
use nix::errno::Errno;

use crate::sys::{Call, DevT, Fcntl, FileStat, Ioctl, SockOpt, Sys};

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

    fn dup_cloexec(&self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        self.enter(Call::Dup)?;
        self.inner.dup_cloexec(fd)
    }

    fn setns(&self, fd: BorrowedFd<'_>, nstype: c_int) -> Result<(), Errno> {
        self.enter(Call::Setns)?;
        self.inner.setns(fd, nstype)
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

    fn read_dir(&self, path: &CStr) -> Result<Vec<String>, Errno> {
        self.enter(Call::ReadDir(path.to_string_lossy().into_owned()))?;
        self.inner.read_dir(path)
    }

    fn read_link(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        self.enter(Call::ReadLink(path.to_string_lossy().into_owned()))?;
        self.inner.read_link(path)
    }

    fn read_file(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        self.enter(Call::ReadFile(path.to_string_lossy().into_owned()))?;
        self.inner.read_file(path)
    }

    fn uevent_socket(&self) -> Result<OwnedFd, Errno> {
        self.enter(Call::UeventSocket)?;
        self.inner.uevent_socket()
    }

    fn uevent_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        self.enter(Call::UeventRecv)?;
        self.inner.uevent_recv(fd, buf)
    }

    fn stat(&self, path: &CStr) -> Result<FileStat, Errno> {
        self.enter(Call::Stat(path.to_string_lossy().into_owned()))?;
        self.inner.stat(path)
    }

    fn fstat(&self, fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
        self.enter(Call::Fstat)?;
        self.inner.fstat(fd)
    }

    fn mkdtemp(&self, template: &CStr) -> Result<CString, Errno> {
        self.enter(Call::Mkdtemp(template.to_string_lossy().into_owned()))?;
        self.inner.mkdtemp(template)
    }

    fn mknod_char(&self, path: &CStr, perm: u32, dev: DevT) -> Result<(), Errno> {
        self.enter(Call::Mknod(path.to_string_lossy().into_owned()))?;
        self.inner.mknod_char(path, perm, dev)
    }

    fn unlink(&self, path: &CStr) -> Result<(), Errno> {
        self.enter(Call::Unlink(path.to_string_lossy().into_owned()))?;
        self.inner.unlink(path)
    }

    fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
        self.enter(Call::Rmdir(path.to_string_lossy().into_owned()))?;
        self.inner.rmdir(path)
    }

    fn write_file(&self, path: &CStr, data: &[u8]) -> Result<(), Errno> {
        self.enter(Call::WriteFile(path.to_string_lossy().into_owned()))?;
        self.inner.write_file(path, data)
    }

    fn getsockopt(&self, fd: BorrowedFd<'_>, opt: SockOpt, buf: &mut [u8]) -> Result<usize, Errno> {
        self.enter(Call::Getsockopt(opt.name()))?;
        self.inner.getsockopt(fd, opt, buf)
    }

    fn fcntl(&self, fd: RawFd, op: Fcntl) -> Result<c_int, Errno> {
        self.enter(Call::Fcntl(op.name()))?;
        self.inner.fcntl(fd, op)
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

    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        panic!("unexpected syscall: netlink socket")
    }

    fn read_dir(&self, path: &CStr) -> Result<Vec<String>, Errno> {
        panic!("unexpected syscall: read_dir({path:?})")
    }

    fn read_link(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        panic!("unexpected syscall: readlink({path:?})")
    }

    fn read_file(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        panic!("unexpected syscall: read({path:?})")
    }

    fn uevent_socket(&self) -> Result<OwnedFd, Errno> {
        panic!("unexpected syscall: uevent socket")
    }

    fn uevent_recv(&self, _: BorrowedFd<'_>, _: &mut [u8]) -> Result<Option<usize>, Errno> {
        panic!("unexpected syscall: recv(uevent)")
    }

    fn stat(&self, path: &CStr) -> Result<FileStat, Errno> {
        panic!("unexpected syscall: stat({path:?})")
    }

    fn fstat(&self, _: BorrowedFd<'_>) -> Result<FileStat, Errno> {
        panic!("unexpected syscall: fstat")
    }

    fn mkdtemp(&self, template: &CStr) -> Result<CString, Errno> {
        panic!("unexpected syscall: mkdtemp({template:?})")
    }

    fn mknod_char(&self, path: &CStr, _: u32, _: DevT) -> Result<(), Errno> {
        panic!("unexpected syscall: mknod({path:?})")
    }

    fn unlink(&self, path: &CStr) -> Result<(), Errno> {
        panic!("unexpected syscall: unlink({path:?})")
    }

    fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
        panic!("unexpected syscall: rmdir({path:?})")
    }

    fn write_file(&self, path: &CStr, _: &[u8]) -> Result<(), Errno> {
        panic!("unexpected syscall: write({path:?})")
    }

    fn getsockopt(&self, _: BorrowedFd<'_>, opt: SockOpt, _: &mut [u8]) -> Result<usize, Errno> {
        panic!("unexpected syscall: {}", opt.name())
    }

    fn fcntl(&self, _: RawFd, op: Fcntl) -> Result<c_int, Errno> {
        panic!("unexpected syscall: {}", op.name())
    }

    fn read_frame(&self, _: BorrowedFd<'_>, _: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
        panic!("unexpected syscall: read")
    }

    fn write_frame(&self, _: BorrowedFd<'_>, _: &[&[u8]]) -> Result<usize, Errno> {
        panic!("unexpected syscall: write")
    }
}
