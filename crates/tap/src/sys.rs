//! The syscall layer: every open, socket and ioctl the crate performs goes
//! through the [`Sys`] trait, so tests can count calls and inject failures
//! (see [`crate::fault`]). [`RealSys`] is the kernel.
//!
//! One function per ioctl, generated with nix's ioctl macros; the request
//! numbers are checked against `<linux/if_tun.h>` in the tests below.

use std::ffi::{CStr, CString};
use std::fmt;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU8, Ordering};

use libc::{c_int, c_short, c_uint, c_ulong};
use nix::errno::Errno;

/// `IFNAMSIZ` from `<linux/if.h>`: 15 bytes of name plus the NUL.
pub const IFNAMSIZ: usize = 16;

/// Flags and request numbers from `<linux/if_tun.h>` and `<linux/sockios.h>`.
pub mod consts {
    use libc::c_ulong;

    pub const IFF_TUN: u16 = 0x0001;
    pub const IFF_TAP: u16 = 0x0002;
    pub const IFF_NAPI: u16 = 0x0010;
    pub const IFF_NAPI_FRAGS: u16 = 0x0020;
    pub const IFF_NO_CARRIER: u16 = 0x0040;
    pub const IFF_MULTI_QUEUE: u16 = 0x0100;
    pub const IFF_ATTACH_QUEUE: u16 = 0x0200;
    pub const IFF_DETACH_QUEUE: u16 = 0x0400;
    pub const IFF_PERSIST: u16 = 0x0800;
    pub const IFF_NO_PI: u16 = 0x1000;
    pub const IFF_ONE_QUEUE: u16 = 0x2000;
    pub const IFF_VNET_HDR: u16 = 0x4000;
    pub const IFF_TUN_EXCL: u16 = 0x8000;

    pub const TUN_F_CSUM: u32 = 0x01;
    pub const TUN_F_TSO4: u32 = 0x02;
    pub const TUN_F_TSO6: u32 = 0x04;
    pub const TUN_F_TSO_ECN: u32 = 0x08;
    pub const TUN_F_UFO: u32 = 0x10;
    pub const TUN_F_USO4: u32 = 0x20;
    pub const TUN_F_USO6: u32 = 0x40;

    // _IOW('T', nr, int) = 0x40045400 | nr; _IOR(...) = 0x80045400 | nr.
    pub const TUNSETIFF: c_ulong = 0x4004_54ca;
    pub const TUNSETPERSIST: c_ulong = 0x4004_54cb;
    pub const TUNSETOWNER: c_ulong = 0x4004_54cc;
    pub const TUNSETGROUP: c_ulong = 0x4004_54ce;
    pub const TUNGETFEATURES: c_ulong = 0x8004_54cf;
    pub const TUNSETOFFLOAD: c_ulong = 0x4004_54d0;
    pub const TUNGETIFF: c_ulong = 0x8004_54d2;
    pub const TUNGETVNETHDRSZ: c_ulong = 0x8004_54d7;
    pub const TUNSETVNETHDRSZ: c_ulong = 0x4004_54d8;
    pub const TUNSETQUEUE: c_ulong = 0x4004_54d9;
    pub const TUNSETCARRIER: c_ulong = 0x4004_54e2;

    pub const SIOCGIFFLAGS: c_ulong = 0x8913;
    pub const SIOCSIFFLAGS: c_ulong = 0x8914;
    pub const SIOCGIFMTU: c_ulong = 0x8921;
    pub const SIOCSIFMTU: c_ulong = 0x8922;
    pub const SIOCGIFHWADDR: c_ulong = 0x8927;
    pub const SIOCSIFHWADDR: c_ulong = 0x8924;
    pub const SIOCGIFINDEX: c_ulong = 0x8933;
    pub const SIOCBRADDIF: c_ulong = 0x89a2;
    pub const SIOCBRDELIF: c_ulong = 0x89a3;
}

/// `struct ifreq` from `<linux/if.h>`: a 16-byte name and a 24-byte union
/// (8-byte aligned, because the union holds `struct ifmap` and pointers).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IfReq {
    pub name: [u8; IFNAMSIZ],
    pub data: IfReqData,
}

/// The union of `struct ifreq`; only the members vmtap uses are named.
#[repr(C)]
#[derive(Clone, Copy)]
pub union IfReqData {
    pub flags: c_short,
    pub ivalue: c_int,
    pub hwaddr: libc::sockaddr,
    pad: [c_ulong; 3],
}

impl IfReq {
    /// An all-zero ifreq.
    pub fn zeroed() -> Self {
        IfReq {
            name: [0; IFNAMSIZ],
            data: IfReqData { pad: [0; 3] },
        }
    }

    /// An ifreq naming `name`; the caller validated it (at most 15 bytes, no NUL).
    pub fn with_name(name: &str) -> Self {
        let mut req = Self::zeroed();
        let bytes = name.as_bytes();
        assert!(
            bytes.len() < IFNAMSIZ,
            "interface name longer than 15 bytes"
        );
        req.name[..bytes.len()].copy_from_slice(bytes);
        req
    }

    /// An ifreq naming `name` with `ifr_flags` set.
    pub fn with_name_flags(name: &str, flags: u16) -> Self {
        let mut req = Self::with_name(name);
        req.data.flags = flags as c_short;
        req
    }

    /// The name up to the first NUL (the kernel always terminates it).
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(IFNAMSIZ);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }

    pub fn flags(&self) -> u16 {
        // SAFETY: every bit pattern is a valid c_short.
        unsafe { self.data.flags as u16 }
    }

    pub fn ivalue(&self) -> c_int {
        // SAFETY: every bit pattern is a valid c_int.
        unsafe { self.data.ivalue }
    }
}

impl fmt::Debug for IfReq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IfReq")
            .field("name", &self.name())
            .field("flags", &format_args!("{:#x}", self.flags()))
            .finish()
    }
}

/// One ioctl with its argument. `name()` is what error messages and
/// `TapError.syscall` show, e.g. `ioctl(TUNSETIFF)`.
#[derive(Debug)]
pub enum Ioctl<'a> {
    TunSetIff(&'a mut IfReq),
    TunGetIff(&'a mut IfReq),
    TunGetFeatures(&'a mut c_uint),
    TunSetPersist(bool),
    TunSetOwner(u32),
    TunSetGroup(u32),
    TunSetOffload(c_uint),
    TunGetVnetHdrSz(&'a mut c_int),
    TunSetVnetHdrSz(c_int),
    TunSetQueue(&'a mut IfReq),
    /// The carrier: 1 on, 0 off (`int`, by pointer).
    TunSetCarrier(c_int),
    GetIfFlags(&'a mut IfReq),
    SetIfFlags(&'a mut IfReq),
    GetIfMtu(&'a mut IfReq),
    SetIfMtu(&'a mut IfReq),
    GetIfHwAddr(&'a mut IfReq),
    SetIfHwAddr(&'a mut IfReq),
    GetIfIndex(&'a mut IfReq),
    BridgeAddIf(&'a mut IfReq),
    BridgeDelIf(&'a mut IfReq),
    /// `VHOST_GET_FEATURES` on a `/dev/vhost-net` fd (anything else: ENOTTY).
    VhostGetFeatures(&'a mut u64),
}

impl Ioctl<'_> {
    /// The request's name as used in `syscall` fields: `ioctl(TUNSETIFF)`.
    pub fn name(&self) -> &'static str {
        match self {
            Ioctl::TunSetIff(_) => "ioctl(TUNSETIFF)",
            Ioctl::TunGetIff(_) => "ioctl(TUNGETIFF)",
            Ioctl::TunGetFeatures(_) => "ioctl(TUNGETFEATURES)",
            Ioctl::TunSetPersist(_) => "ioctl(TUNSETPERSIST)",
            Ioctl::TunSetOwner(_) => "ioctl(TUNSETOWNER)",
            Ioctl::TunSetGroup(_) => "ioctl(TUNSETGROUP)",
            Ioctl::TunSetOffload(_) => "ioctl(TUNSETOFFLOAD)",
            Ioctl::TunGetVnetHdrSz(_) => "ioctl(TUNGETVNETHDRSZ)",
            Ioctl::TunSetVnetHdrSz(_) => "ioctl(TUNSETVNETHDRSZ)",
            Ioctl::TunSetQueue(_) => "ioctl(TUNSETQUEUE)",
            Ioctl::TunSetCarrier(_) => "ioctl(TUNSETCARRIER)",
            Ioctl::GetIfFlags(_) => "ioctl(SIOCGIFFLAGS)",
            Ioctl::SetIfFlags(_) => "ioctl(SIOCSIFFLAGS)",
            Ioctl::GetIfMtu(_) => "ioctl(SIOCGIFMTU)",
            Ioctl::SetIfMtu(_) => "ioctl(SIOCSIFMTU)",
            Ioctl::GetIfHwAddr(_) => "ioctl(SIOCGIFHWADDR)",
            Ioctl::SetIfHwAddr(_) => "ioctl(SIOCSIFHWADDR)",
            Ioctl::GetIfIndex(_) => "ioctl(SIOCGIFINDEX)",
            Ioctl::BridgeAddIf(_) => "ioctl(SIOCBRADDIF)",
            Ioctl::BridgeDelIf(_) => "ioctl(SIOCBRDELIF)",
            Ioctl::VhostGetFeatures(_) => "ioctl(VHOST_GET_FEATURES)",
        }
    }
}

/// What a syscall-layer call was, for fault injection and call tracing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Open(String),
    Socket,
    Ioctl(&'static str),
    /// `socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)`.
    NetlinkSocket,
    /// Sending a netlink request; the label names its type: `netlink(RTM_NEWLINK)`.
    NetlinkSend(&'static str),
    /// Receiving (part of) the reply to the last request sent on that socket,
    /// labelled like the request.
    NetlinkRecv(&'static str),
    /// `setns(fd, CLONE_NEWNET)` on a thread of vmtap's own.
    Setns,
    /// `fcntl(F_DUPFD_CLOEXEC)`.
    Dup,
    /// Listing a directory (`/proc`, `/proc/<pid>/fd`).
    ReadDir(String),
    /// `readlink` (`/proc/<pid>/fd/<fd>`).
    ReadLink(String),
    /// Reading a small file whole (`/proc/<pid>/fdinfo/<fd>`, `comm`).
    ReadFile(String),
    /// `socket(AF_NETLINK, SOCK_RAW, NETLINK_KOBJECT_UEVENT)`, bound to the
    /// kernel's uevent group.
    UeventSocket,
    /// Receiving one uevent (or finding none queued).
    UeventRecv,
    /// `stat(path)`.
    Stat(String),
    /// `fstat(fd)`.
    Fstat,
    /// `mkdtemp(template)`.
    Mkdtemp(String),
    /// `mknod(path, S_IFCHR | mode, dev)`.
    Mknod(String),
    /// `unlink(path)`.
    Unlink(String),
    /// `rmdir(path)`.
    Rmdir(String),
    /// Writing a small file whole (a sysctl under `/proc/sys/net`).
    WriteFile(String),
    /// `getsockopt(SO_...)`, labelled as [`SockOpt::name`] has it.
    Getsockopt(&'static str),
    /// `fcntl(F_...)`, labelled as [`Fcntl::name`] has it.
    Fcntl(&'static str),
    /// Reading one frame from a queue's fd without waiting.
    ReadFrame,
    /// Writing one frame to a queue's fd without waiting.
    WriteFrame,
}

impl Call {
    /// The `syscall` label an error of this call carries: `open`, `socket`,
    /// `ioctl(TUNSETIFF)`, `netlink(RTM_GETLINK)`, `setns`, `scandir`...
    pub fn label(&self) -> &'static str {
        match self {
            Call::Open(_) => "open",
            Call::Socket | Call::NetlinkSocket => "socket",
            Call::Ioctl(l) | Call::NetlinkSend(l) | Call::NetlinkRecv(l) => l,
            Call::Setns => "setns",
            Call::Dup => "fcntl(F_DUPFD_CLOEXEC)",
            Call::ReadDir(_) => "scandir",
            Call::ReadLink(_) => "readlink",
            Call::ReadFile(_) => "read",
            Call::UeventSocket => "socket",
            Call::UeventRecv => "recv(uevent)",
            Call::Stat(_) => "stat",
            Call::Fstat => "fstat",
            Call::Mkdtemp(_) => "mkdtemp",
            Call::Mknod(_) => "mknod",
            Call::Unlink(_) => "unlink",
            Call::Rmdir(_) => "rmdir",
            Call::WriteFile(_) => "write",
            Call::Getsockopt(l) | Call::Fcntl(l) => l,
            Call::ReadFrame => "read",
            Call::WriteFrame => "write",
        }
    }
}

/// The socket options vmtap reads (`getsockopt(SOL_SOCKET, ...)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_DOMAIN`: the address family, an `int`.
    Domain,
    /// `SO_PEERCRED`: a `struct ucred` (the peer's pid, euid and egid when it
    /// connected, translated into the caller's namespaces).
    PeerCred,
    /// `SO_PEERGROUPS` (Linux 4.13): the peer's supplementary groups when it
    /// connected, an array of `gid_t`; ERANGE when the buffer is too small.
    PeerGroups,
}

impl SockOpt {
    /// `getsockopt(SO_PEERCRED)`...
    pub fn name(self) -> &'static str {
        match self {
            SockOpt::Domain => "getsockopt(SO_DOMAIN)",
            SockOpt::PeerCred => "getsockopt(SO_PEERCRED)",
            SockOpt::PeerGroups => "getsockopt(SO_PEERGROUPS)",
        }
    }

    fn raw(self) -> c_int {
        match self {
            SockOpt::Domain => libc::SO_DOMAIN,
            SockOpt::PeerCred => libc::SO_PEERCRED,
            SockOpt::PeerGroups => libc::SO_PEERGROUPS,
        }
    }
}

/// The fcntl(2) requests vmtap makes on fd numbers a caller hands it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fcntl {
    /// `F_GETFD`: the fd flags (EBADF when the number is not open).
    GetFd,
    /// `F_SETFD`: set the fd flags.
    SetFd(c_int),
}

impl Fcntl {
    /// `fcntl(F_GETFD)`...
    pub fn name(self) -> &'static str {
        match self {
            Fcntl::GetFd => "fcntl(F_GETFD)",
            Fcntl::SetFd(_) => "fcntl(F_SETFD)",
        }
    }
}

/// The syscalls vmtap makes. Implementations must be usable from any thread.
pub trait Sys: Send + Sync {
    /// `open(path, flags | O_CLOEXEC)`, retried on EINTR.
    fn open(&self, path: &CStr, flags: c_int) -> Result<OwnedFd, Errno>;
    /// An `AF_UNIX` datagram control socket for the SIOC* interface ioctls
    /// (close-on-exec), as libvirt uses.
    fn control_socket(&self) -> Result<OwnedFd, Errno>;
    /// One ioctl.
    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno>;

    /// `fcntl(fd, F_DUPFD_CLOEXEC, 3)`: vmtap's own close-on-exec duplicate
    /// of a caller's fd, made where the caller owns the number.
    fn dup_cloexec(&self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        let _ = fd;
        Err(Errno::ENOSYS)
    }

    /// `setns(fd, nstype)`: move the calling thread into the namespace of
    /// `fd`. vmtap calls it only on short-lived threads of its own
    /// ([`crate::netns::run_in`]). A `Sys` without it fails with ENOSYS.
    fn setns(&self, fd: BorrowedFd<'_>, nstype: c_int) -> Result<(), Errno> {
        let _ = (fd, nstype);
        Err(Errno::ENOSYS)
    }

    /// An `AF_NETLINK` / `NETLINK_ROUTE` raw socket (close-on-exec) with
    /// extended acks, capped acks and strict checking turned on where the
    /// kernel has them (see [`crate::netlink`]). A `Sys` without netlink
    /// (test doubles) fails with ENOSYS.
    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        Err(Errno::ENOSYS)
    }
    /// Send one netlink datagram to the kernel, retried on EINTR.
    fn netlink_send(&self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        let _ = (fd, msg);
        Err(Errno::ENOSYS)
    }
    /// Receive one datagram into `buf`, retried on EINTR. Returns the
    /// datagram's real length (`MSG_TRUNC`): more than `buf.len()` means the
    /// rest was cut off and is lost.
    fn netlink_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        let _ = (fd, buf);
        Err(Errno::ENOSYS)
    }

    /// The names in directory `path`, without `.` and `..` (close-on-exec
    /// while open). A `Sys` without a filesystem (test doubles) fails with
    /// ENOSYS, as do the two below.
    fn read_dir(&self, path: &CStr) -> Result<Vec<String>, Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }
    /// `readlink(path)`.
    fn read_link(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }
    /// The whole content of a small file such as `/proc/<pid>/fdinfo/<fd>`,
    /// retried on EINTR.
    fn read_file(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }

    /// A `NETLINK_KOBJECT_UEVENT` socket (close-on-exec, non-blocking) bound
    /// to the kernel's uevent multicast group, in the calling thread's
    /// network namespace: it receives the uevents of the devices of that
    /// namespace (see [`crate::uevent`]). A `Sys` without it fails with
    /// ENOSYS, as do the methods below.
    fn uevent_socket(&self) -> Result<OwnedFd, Errno> {
        Err(Errno::ENOSYS)
    }
    /// The next uevent the kernel queued on `fd` (messages from anyone but
    /// the kernel are skipped), as its length in `buf`; `None` when there is
    /// none queued (never blocks). A uevent longer than `buf` is skipped.
    fn uevent_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        let _ = (fd, buf);
        Err(Errno::ENOSYS)
    }
    /// `stat(path)` (following symlinks).
    fn stat(&self, path: &CStr) -> Result<FileStat, Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }
    /// `fstat(fd)`.
    fn fstat(&self, fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
        let _ = fd;
        Err(Errno::ENOSYS)
    }
    /// `mkdtemp(template)`: a new directory, mode 0700, named from
    /// `template` (ending in `XXXXXX`); returns its path.
    fn mkdtemp(&self, template: &CStr) -> Result<CString, Errno> {
        let _ = template;
        Err(Errno::ENOSYS)
    }
    /// `mknod(path, S_IFCHR | perm, dev)`: a character device node.
    fn mknod_char(&self, path: &CStr, perm: u32, dev: DevT) -> Result<(), Errno> {
        let _ = (path, perm, dev);
        Err(Errno::ENOSYS)
    }
    /// `unlink(path)`.
    fn unlink(&self, path: &CStr) -> Result<(), Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }
    /// `rmdir(path)`.
    fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
        let _ = path;
        Err(Errno::ENOSYS)
    }
    /// Write `data` to the existing file `path` (opened write-only and
    /// close-on-exec, written whole, retried on EINTR): a sysctl under
    /// `/proc/sys/net`, which shows the network namespace of the thread that
    /// opens it.
    fn write_file(&self, path: &CStr, data: &[u8]) -> Result<(), Errno> {
        let _ = (path, data);
        Err(Errno::ENOSYS)
    }

    /// `getsockopt(fd, SOL_SOCKET, opt)` into `buf`; returns the length the
    /// kernel wrote. A `Sys` without it (test doubles) fails with ENOSYS.
    fn getsockopt(&self, fd: BorrowedFd<'_>, opt: SockOpt, buf: &mut [u8]) -> Result<usize, Errno> {
        let _ = (fd, opt, buf);
        Err(Errno::ENOSYS)
    }

    /// `fcntl(fd, op)` on a number a caller handed over (which may not be
    /// open: EBADF). Returns fcntl's result. A `Sys` without it fails with
    /// ENOSYS.
    fn fcntl(&self, fd: RawFd, op: Fcntl) -> Result<c_int, Errno> {
        let _ = (fd, op);
        Err(Errno::ENOSYS)
    }
    /// Read one frame from a TUN/TAP queue's fd into `buf` without waiting
    /// (EAGAIN when there is none) and without changing the fd's flags,
    /// retried on EINTR. The first `n` bytes of `buf` (`n` returned) are
    /// then initialised. See [`RealSys`] for how.
    fn read_frame(&self, fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
        let _ = (fd, buf);
        Err(Errno::ENOSYS)
    }
    /// Write `parts` as one frame to a TUN/TAP queue's fd without waiting
    /// (EAGAIN when the queue is full) and without changing the fd's flags,
    /// retried on EINTR.
    fn write_frame(&self, fd: BorrowedFd<'_>, parts: &[&[u8]]) -> Result<usize, Errno> {
        let _ = (fd, parts);
        Err(Errno::ENOSYS)
    }
}

/// A character or block device number, as major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevT {
    pub major: u32,
    pub minor: u32,
}

impl DevT {
    /// glibc's `makedev` encoding of `dev_t` (what stat and mknod use).
    pub fn to_raw(self) -> libc::dev_t {
        let (ma, mi) = (u64::from(self.major), u64::from(self.minor));
        ((ma & 0xfff) << 8) | ((ma & !0xfff) << 32) | (mi & 0xff) | ((mi & !0xff) << 12)
    }

    /// glibc's `major` and `minor` of a `dev_t`.
    pub fn from_raw(dev: libc::dev_t) -> DevT {
        DevT {
            major: (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32,
            minor: ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32,
        }
    }
}

impl fmt::Display for DevT {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// What `stat`/`fstat` report that vmtap looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// `st_rdev`: the device a device node stands for.
    pub rdev: DevT,
}

impl FileStat {
    /// A character device node for `dev`.
    pub fn is_char_device(&self, dev: DevT) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFCHR && self.rdev == dev
    }
}

/// Whether the kernel takes `RWF_NOWAIT` on TUN/TAP fds (0 unknown, 1 yes,
/// 2 no): recent kernels do (6.18 here); on older ones `preadv2`/`pwritev2`
/// answer EOPNOTSUPP (ENOSYS before 4.6) and vmtap falls back, once for all.
static READ_NOWAIT: AtomicU8 = AtomicU8::new(0);
static WRITE_NOWAIT: AtomicU8 = AtomicU8::new(0);

/// `preadv2`/`pwritev2` with `RWF_NOWAIT` at the current position (offset
/// -1), through `syscall(2)`: glibc has the wrappers only since 2.26 and
/// the release build links against 2.17. On 64-bit targets the offset's
/// low word is the whole offset and the high word is ignored.
fn rw_nowait(nr: libc::c_long, fd: c_int, iov: &[libc::iovec]) -> isize {
    const RWF_NOWAIT: c_int = 0x0000_0008;
    // SAFETY: iov describes live buffers for the duration of the call; the
    // arguments are those of preadv2/pwritev2 (fd, iov, iovcnt, pos_l,
    // pos_h, flags).
    unsafe {
        libc::syscall(
            nr,
            fd,
            iov.as_ptr(),
            iov.len() as c_int,
            -1 as libc::c_long,
            0 as libc::c_long,
            RWF_NOWAIT,
        ) as isize
    }
}

/// Run `call` (-1 and errno on failure) again on EINTR.
pub(crate) fn retry_eintr(mut call: impl FnMut() -> isize) -> Result<usize, Errno> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        match Errno::last() {
            Errno::EINTR => continue,
            e => return Err(e),
        }
    }
}

/// Whether `fd` has something to read now (`poll` with a zero timeout);
/// an error or hang-up counts, so the read reports it.
fn readable_now(fd: c_int) -> Result<bool, Errno> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, zero timeout.
    retry_eintr(|| unsafe { libc::poll(&mut p, 1, 0) } as isize).map(|n| n > 0)
}

mod raw {
    use super::IfReq;
    use libc::{c_int, c_uint};

    nix::ioctl_write_ptr_bad!(
        tun_set_iff,
        nix::request_code_write!(b'T', 202, std::mem::size_of::<c_int>()),
        IfReq
    );
    nix::ioctl_read_bad!(
        tun_get_iff,
        nix::request_code_read!(b'T', 210, std::mem::size_of::<c_uint>()),
        IfReq
    );
    nix::ioctl_read!(tun_get_features, b'T', 207, c_uint);
    nix::ioctl_write_int!(tun_set_persist, b'T', 203);
    nix::ioctl_write_int!(tun_set_owner, b'T', 204);
    nix::ioctl_write_int!(tun_set_group, b'T', 206);
    nix::ioctl_write_int!(tun_set_offload, b'T', 208);
    nix::ioctl_read!(tun_get_vnet_hdr_sz, b'T', 215, c_int);
    nix::ioctl_write_ptr!(tun_set_vnet_hdr_sz, b'T', 216, c_int);
    nix::ioctl_write_ptr_bad!(
        tun_set_queue,
        nix::request_code_write!(b'T', 217, std::mem::size_of::<c_int>()),
        IfReq
    );
    nix::ioctl_write_ptr!(tun_set_carrier, b'T', 226, c_int);
    nix::ioctl_read_bad!(get_if_flags, super::consts::SIOCGIFFLAGS, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_flags, super::consts::SIOCSIFFLAGS, IfReq);
    nix::ioctl_read_bad!(get_if_mtu, super::consts::SIOCGIFMTU, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_mtu, super::consts::SIOCSIFMTU, IfReq);
    nix::ioctl_read_bad!(get_if_hwaddr, super::consts::SIOCGIFHWADDR, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_hwaddr, super::consts::SIOCSIFHWADDR, IfReq);
    nix::ioctl_read_bad!(get_if_index, super::consts::SIOCGIFINDEX, IfReq);
    nix::ioctl_write_ptr_bad!(bridge_add_if, super::consts::SIOCBRADDIF, IfReq);
    nix::ioctl_write_ptr_bad!(bridge_del_if, super::consts::SIOCBRDELIF, IfReq);
    nix::ioctl_read!(vhost_get_features, 0xAF, 0x00, u64);
}

/// The kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

impl Sys for RealSys {
    fn open(&self, path: &CStr, flags: c_int) -> Result<OwnedFd, Errno> {
        loop {
            // SAFETY: path is NUL-terminated; open has no other preconditions.
            let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
            if fd >= 0 {
                // SAFETY: open returned a fresh descriptor that nothing else owns.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
    }

    fn control_socket(&self) -> Result<OwnedFd, Errno> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: socket returned a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn ioctl(&self, fd: BorrowedFd<'_>, op: &mut Ioctl<'_>) -> Result<(), Errno> {
        let fd = fd.as_raw_fd();
        // SAFETY: each request is paired with the argument type the kernel
        // expects for it (see <linux/if_tun.h> and netdevice(7)); pointers
        // come from live Rust references.
        let res = unsafe {
            match op {
                Ioctl::TunSetIff(r) => raw::tun_set_iff(fd, &**r),
                Ioctl::TunGetIff(r) => raw::tun_get_iff(fd, &mut **r),
                Ioctl::TunGetFeatures(v) => raw::tun_get_features(fd, &mut **v),
                Ioctl::TunSetPersist(on) => raw::tun_set_persist(fd, c_ulong::from(*on)),
                Ioctl::TunSetOwner(uid) => raw::tun_set_owner(fd, c_ulong::from(*uid)),
                Ioctl::TunSetGroup(gid) => raw::tun_set_group(fd, c_ulong::from(*gid)),
                Ioctl::TunSetOffload(bits) => raw::tun_set_offload(fd, c_ulong::from(*bits)),
                Ioctl::TunGetVnetHdrSz(v) => raw::tun_get_vnet_hdr_sz(fd, &mut **v),
                Ioctl::TunSetVnetHdrSz(v) => raw::tun_set_vnet_hdr_sz(fd, &*v),
                Ioctl::TunSetQueue(r) => raw::tun_set_queue(fd, &**r),
                Ioctl::TunSetCarrier(v) => raw::tun_set_carrier(fd, &*v),
                Ioctl::GetIfFlags(r) => raw::get_if_flags(fd, &mut **r),
                Ioctl::SetIfFlags(r) => raw::set_if_flags(fd, &**r),
                Ioctl::GetIfMtu(r) => raw::get_if_mtu(fd, &mut **r),
                Ioctl::SetIfMtu(r) => raw::set_if_mtu(fd, &**r),
                Ioctl::GetIfHwAddr(r) => raw::get_if_hwaddr(fd, &mut **r),
                Ioctl::SetIfHwAddr(r) => raw::set_if_hwaddr(fd, &**r),
                Ioctl::GetIfIndex(r) => raw::get_if_index(fd, &mut **r),
                Ioctl::BridgeAddIf(r) => raw::bridge_add_if(fd, &**r),
                Ioctl::BridgeDelIf(r) => raw::bridge_del_if(fd, &**r),
                Ioctl::VhostGetFeatures(v) => raw::vhost_get_features(fd, &mut **v),
            }
        };
        res.map(|_| ())
    }

    fn dup_cloexec(&self, fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
        // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a borrowed, open fd.
        let d = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
        if d < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh duplicate that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(d) })
    }

    fn setns(&self, fd: BorrowedFd<'_>, nstype: c_int) -> Result<(), Errno> {
        // SAFETY: setns takes an fd and a flag; it changes only the calling
        // thread's namespace (vmtap calls it on threads of its own).
        if unsafe { libc::setns(fd.as_raw_fd(), nstype) } == 0 {
            Ok(())
        } else {
            Err(Errno::last())
        }
    }

    fn netlink_socket(&self) -> Result<OwnedFd, Errno> {
        let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC;
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_ROUTE) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: socket returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Error text in NLMSG_ERROR, no copy of the request in it, and
        // requests checked strictly (so dump filters are honoured or
        // refused). Kernels without an option (ENOPROTOOPT) work without it.
        for opt in [
            libc::NETLINK_EXT_ACK,
            libc::NETLINK_CAP_ACK,
            libc::NETLINK_GET_STRICT_CHK,
        ] {
            let one: c_int = 1;
            // SAFETY: setsockopt reads size_of::<c_int>() bytes from a live c_int.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_NETLINK,
                    opt,
                    (&one as *const c_int).cast(),
                    size_of::<c_int>() as libc::socklen_t,
                )
            };
        }
        Ok(fd)
    }

    fn netlink_send(&self, fd: BorrowedFd<'_>, msg: &[u8]) -> Result<(), Errno> {
        // SAFETY: send reads msg.len() bytes from a live slice; an
        // unconnected netlink socket sends to the kernel (port 0).
        let n = retry_eintr(|| unsafe {
            libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0)
        })?;
        // A netlink datagram goes whole or not at all.
        if n == msg.len() {
            Ok(())
        } else {
            Err(Errno::EMSGSIZE)
        }
    }

    /// `preadv2(RWF_NOWAIT)`: non-blocking for this call only. The fd's
    /// O_NONBLOCK flag belongs to its open file description, which a VMM
    /// handed the same queue shares, so it is never changed. On a kernel
    /// without RWF_NOWAIT for TUN/TAP: `poll` with a zero timeout, then
    /// `read` only when a frame is there; that cannot block as long as
    /// nobody else reads the same queue (vmtap reads a queue from one
    /// reader only).
    fn read_frame(&self, fd: BorrowedFd<'_>, buf: &mut [MaybeUninit<u8>]) -> Result<usize, Errno> {
        let fd = fd.as_raw_fd();
        if READ_NOWAIT.load(Ordering::Relaxed) != 2 {
            let iov = [libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: buf.len(),
            }];
            match retry_eintr(|| rw_nowait(libc::SYS_preadv2, fd, &iov)) {
                Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => READ_NOWAIT.store(2, Ordering::Relaxed),
                other => {
                    READ_NOWAIT.store(1, Ordering::Relaxed);
                    return other;
                }
            }
        }
        if !readable_now(fd)? {
            return Err(Errno::EAGAIN);
        }
        // SAFETY: read writes at most buf.len() bytes into a live slice
        // (uninitialised memory may be written to).
        retry_eintr(|| unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
    }

    /// `pwritev2(RWF_NOWAIT)`, or plain `writev` on a kernel without it (a
    /// TUN/TAP write waits only when its socket's send buffer is full, which
    /// TUNSETSNDBUF sets; its default has no limit).
    fn write_frame(&self, fd: BorrowedFd<'_>, parts: &[&[u8]]) -> Result<usize, Errno> {
        let fd = fd.as_raw_fd();
        // A header and a frame: no allocation for the usual case.
        let mut small = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; 2];
        let big: Vec<libc::iovec>;
        let to_iov = |p: &&[u8]| libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        };
        let iov: &[libc::iovec] = if parts.len() <= small.len() {
            for (slot, p) in small.iter_mut().zip(parts) {
                *slot = to_iov(p);
            }
            &small[..parts.len()]
        } else {
            big = parts.iter().map(to_iov).collect();
            &big
        };
        if WRITE_NOWAIT.load(Ordering::Relaxed) != 2 {
            match retry_eintr(|| rw_nowait(libc::SYS_pwritev2, fd, iov)) {
                Err(Errno::EOPNOTSUPP | Errno::ENOSYS) => WRITE_NOWAIT.store(2, Ordering::Relaxed),
                other => {
                    WRITE_NOWAIT.store(1, Ordering::Relaxed);
                    return other;
                }
            }
        }
        // SAFETY: iov describes live buffers for the duration of the call.
        retry_eintr(|| unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as c_int) })
    }

    fn netlink_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: recv writes at most buf.len() bytes into a live mutable
        // slice; MSG_TRUNC only changes the returned length.
        retry_eintr(|| unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
            )
        })
    }

    fn read_dir(&self, path: &CStr) -> Result<Vec<String>, Errno> {
        // std opens the directory close-on-exec and skips `.` and `..`.
        let dir = std::fs::read_dir(path_of(path)).map_err(errno_of)?;
        dir.map(|e| {
            e.map(|e| e.file_name().to_string_lossy().into_owned())
                .map_err(errno_of)
        })
        .collect()
    }

    fn read_link(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        use std::os::unix::ffi::OsStringExt;
        std::fs::read_link(path_of(path))
            .map(|p| p.into_os_string().into_vec())
            .map_err(errno_of)
    }

    fn read_file(&self, path: &CStr) -> Result<Vec<u8>, Errno> {
        // Close-on-exec, EINTR retried, read to the end.
        std::fs::read(path_of(path)).map_err(errno_of)
    }

    fn uevent_socket(&self) -> Result<OwnedFd, Errno> {
        let ty = libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK;
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_NETLINK, ty, libc::NETLINK_KOBJECT_UEVENT) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: socket returned a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // Room for a burst of other devices' events (best effort: the
        // forced size needs CAP_NET_ADMIN; the plain one is capped).
        let size: c_int = 4 << 20;
        for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
            // SAFETY: setsockopt reads size_of::<c_int>() bytes from a live c_int.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&size as *const c_int).cast(),
                    size_of::<c_int>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
        }
        // SAFETY: an all-zero sockaddr_nl is valid; the fields are set below.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_groups = 1; // the kernel's uevents
                            // SAFETY: bind reads a live sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Errno::last());
        }
        Ok(fd)
    }

    fn uevent_recv(&self, fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
        loop {
            // SAFETY: an all-zero sockaddr_nl is valid; recvfrom fills it.
            let mut from: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: recvfrom writes at most buf.len() bytes into a live
            // mutable slice and at most `len` bytes into `from`.
            let n = unsafe {
                libc::recvfrom(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    (&mut from as *mut libc::sockaddr_nl).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                match Errno::last() {
                    Errno::EINTR => continue,
                    Errno::EAGAIN => return Ok(None),
                    e => return Err(e),
                }
            }
            let n = n as usize;
            // Only the kernel (port 0) sends uevents; skip anything else,
            // and anything that did not fit.
            if from.nl_pid != 0 || n > buf.len() {
                continue;
            }
            return Ok(Some(n));
        }
    }

    fn stat(&self, path: &CStr) -> Result<FileStat, Errno> {
        // SAFETY: an all-zero stat is valid; stat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: path is NUL-terminated; st is a live, writable stat.
        if unsafe { libc::stat(path.as_ptr(), &mut st) } != 0 {
            return Err(Errno::last());
        }
        Ok(file_stat(&st))
    }

    fn fstat(&self, fd: BorrowedFd<'_>) -> Result<FileStat, Errno> {
        // SAFETY: an all-zero stat is valid; fstat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open (borrowed); st is a live, writable stat.
        if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
            return Err(Errno::last());
        }
        Ok(file_stat(&st))
    }

    fn mkdtemp(&self, template: &CStr) -> Result<CString, Errno> {
        let mut buf = template.to_bytes_with_nul().to_vec();
        // SAFETY: buf is a writable, NUL-terminated copy of the template;
        // mkdtemp rewrites its XXXXXX in place.
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
        if p.is_null() {
            return Err(Errno::last());
        }
        buf.pop();
        CString::new(buf).map_err(|_| Errno::EINVAL)
    }

    fn mknod_char(&self, path: &CStr, perm: u32, dev: DevT) -> Result<(), Errno> {
        let mode = libc::S_IFCHR | (perm & 0o7777);
        // SAFETY: path is NUL-terminated; mknod has no other preconditions.
        if unsafe { libc::mknod(path.as_ptr(), mode, dev.to_raw()) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn unlink(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: path is NUL-terminated.
        if unsafe { libc::unlink(path.as_ptr()) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn rmdir(&self, path: &CStr) -> Result<(), Errno> {
        // SAFETY: path is NUL-terminated.
        if unsafe { libc::rmdir(path.as_ptr()) } != 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    fn write_file(&self, path: &CStr, data: &[u8]) -> Result<(), Errno> {
        use std::io::Write;
        // Close-on-exec, never created, EINTR retried, written whole.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path_of(path))
            .map_err(errno_of)?;
        f.write_all(data).map_err(errno_of)
    }

    fn getsockopt(&self, fd: BorrowedFd<'_>, opt: SockOpt, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut len = libc::socklen_t::try_from(buf.len()).map_err(|_| Errno::EINVAL)?;
        // SAFETY: getsockopt writes at most `len` bytes into a live mutable
        // slice of that length and updates `len`.
        let r = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                opt.raw(),
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if r != 0 {
            return Err(Errno::last());
        }
        Ok(len as usize)
    }

    fn fcntl(&self, fd: RawFd, op: Fcntl) -> Result<c_int, Errno> {
        // SAFETY: F_GETFD / F_SETFD only read or set the close-on-exec flag of
        // a descriptor number; a number that is not open is EBADF.
        let r = unsafe {
            match op {
                Fcntl::GetFd => libc::fcntl(fd, libc::F_GETFD),
                Fcntl::SetFd(flags) => libc::fcntl(fd, libc::F_SETFD, flags),
            }
        };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(r)
    }
}

fn file_stat(st: &libc::stat) -> FileStat {
    FileStat {
        mode: st.st_mode,
        rdev: DevT::from_raw(st.st_rdev),
    }
}

fn path_of(path: &CStr) -> &std::path::Path {
    use std::os::unix::ffi::OsStrExt;
    std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()))
}

fn errno_of(e: std::io::Error) -> Errno {
    e.raw_os_error().map_or(Errno::EIO, Errno::from_i32)
}

/// `size_of::<IfReq>()` must match the kernel's `struct ifreq` (40 bytes on
/// 64-bit Linux, 32 on 32-bit).
pub const IFREQ_SIZE: usize = size_of::<IfReq>();

#[cfg(test)]
mod tests {
    use super::consts::*;
    use super::*;

    #[test]
    fn ifreq_has_kernel_layout() {
        assert_eq!(IFREQ_SIZE, size_of::<libc::ifreq>());
        assert_eq!(
            std::mem::align_of::<IfReq>(),
            std::mem::align_of::<libc::ifreq>()
        );
        let r = IfReq::zeroed();
        let base = &r as *const IfReq as usize;
        assert_eq!(&r.data as *const IfReqData as usize - base, IFNAMSIZ);
    }

    #[test]
    fn ifreq_packs_name_and_flags() {
        let r = IfReq::with_name_flags("vm0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
        assert_eq!(&r.name[..4], b"vm0\0");
        assert!(r.name[3..].iter().all(|&b| b == 0));
        assert_eq!(r.flags(), 0x5002);
        assert_eq!(r.name(), "vm0");
        // The flags are a native-endian short at offset 16, as the kernel reads them.
        // SAFETY: IfReq is plain old data; viewing its bytes is fine.
        let bytes: &[u8; IFREQ_SIZE] = unsafe { &*(&r as *const IfReq as *const [u8; IFREQ_SIZE]) };
        assert_eq!(&bytes[16..18], &0x5002u16.to_ne_bytes());
        let full = IfReq::with_name("abcdefghijklmno");
        assert_eq!(full.name(), "abcdefghijklmno");
        assert_eq!(full.name[15], 0);
    }

    #[test]
    #[should_panic]
    fn ifreq_refuses_sixteen_bytes() {
        IfReq::with_name("abcdefghijklmnop");
    }

    #[test]
    fn request_numbers_match_if_tun_h() {
        use nix::{request_code_read, request_code_write};
        let w = |nr| request_code_write!(b'T', nr, size_of::<c_int>()) as c_ulong;
        let r = |nr| request_code_read!(b'T', nr, size_of::<c_uint>()) as c_ulong;
        assert_eq!(w(202), TUNSETIFF);
        assert_eq!(w(203), TUNSETPERSIST);
        assert_eq!(w(204), TUNSETOWNER);
        assert_eq!(w(206), TUNSETGROUP);
        assert_eq!(r(207), TUNGETFEATURES);
        assert_eq!(w(208), TUNSETOFFLOAD);
        assert_eq!(r(210), TUNGETIFF);
        assert_eq!(r(215), TUNGETVNETHDRSZ);
        assert_eq!(w(216), TUNSETVNETHDRSZ);
        assert_eq!(w(217), TUNSETQUEUE);
        assert_eq!(w(226), TUNSETCARRIER);
        assert_eq!(SIOCGIFFLAGS, libc::SIOCGIFFLAGS as c_ulong);
        assert_eq!(SIOCSIFFLAGS, libc::SIOCSIFFLAGS as c_ulong);
        assert_eq!(SIOCGIFMTU, libc::SIOCGIFMTU as c_ulong);
        assert_eq!(SIOCSIFMTU, libc::SIOCSIFMTU as c_ulong);
        assert_eq!(SIOCGIFHWADDR, libc::SIOCGIFHWADDR as c_ulong);
        assert_eq!(SIOCSIFHWADDR, libc::SIOCSIFHWADDR as c_ulong);
        assert_eq!(SIOCGIFINDEX, libc::SIOCGIFINDEX as c_ulong);
        assert_eq!(IFF_TAP as libc::c_int, libc::IFF_TAP);
        assert_eq!(IFF_NO_PI as libc::c_int, libc::IFF_NO_PI);
        assert_eq!(IFF_VNET_HDR as libc::c_int, libc::IFF_VNET_HDR);
        assert_eq!(IFF_MULTI_QUEUE as libc::c_int, libc::IFF_MULTI_QUEUE);
        assert_eq!(IFF_ONE_QUEUE as libc::c_int, libc::IFF_ONE_QUEUE);
    }

    #[test]
    fn dev_t_encoding_is_glibcs() {
        for (major, minor) in [
            (0, 0),
            (246, 1),
            (10, 200),
            (4095, 255),
            (4096, 256),
            (511, 1 << 19),
        ] {
            let d = DevT { major, minor };
            assert_eq!(DevT::from_raw(d.to_raw()), d);
            assert_eq!(d.to_raw(), libc::makedev(major, minor));
        }
        assert_eq!(
            DevT {
                major: 246,
                minor: 3
            }
            .to_string(),
            "246:3"
        );
    }

    /// The path for kernels without RWF_NOWAIT on TUN/TAP (poll, then read;
    /// writev) behaves like the other: EAGAIN when empty, one frame per
    /// read, the fd left blocking. Forced here; the flag is process-wide, so
    /// the other tests may take this path meanwhile, which is as correct.
    #[test]
    fn the_fallback_without_rwf_nowait_never_waits() {
        use std::os::fd::AsFd;
        use std::os::unix::net::UnixDatagram;
        let (a, b) = UnixDatagram::pair().unwrap();
        READ_NOWAIT.store(2, Ordering::Relaxed);
        WRITE_NOWAIT.store(2, Ordering::Relaxed);
        let mut buf = [MaybeUninit::<u8>::uninit(); 16];
        assert_eq!(RealSys.read_frame(b.as_fd(), &mut buf), Err(Errno::EAGAIN));
        assert_eq!(RealSys.write_frame(a.as_fd(), &[b"ab", b"cd"]), Ok(4));
        assert_eq!(RealSys.read_frame(b.as_fd(), &mut buf), Ok(4));
        assert_eq!(RealSys.read_frame(b.as_fd(), &mut buf), Err(Errno::EAGAIN));
        READ_NOWAIT.store(0, Ordering::Relaxed);
        WRITE_NOWAIT.store(0, Ordering::Relaxed);
        // SAFETY: F_GETFL on a live fd.
        let fl = unsafe { libc::fcntl(b.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0);
    }

    #[test]
    fn ioctl_names_are_syscall_labels() {
        let mut r = IfReq::zeroed();
        assert_eq!(Ioctl::TunSetIff(&mut r).name(), "ioctl(TUNSETIFF)");
        assert_eq!(Ioctl::TunSetPersist(true).name(), "ioctl(TUNSETPERSIST)");
    }
}
