//! The syscall layer: every open, socket and ioctl the crate performs goes
//! through the [`Sys`] trait, so tests can count calls and inject failures
//! (see [`crate::fault`]). [`RealSys`] is the kernel.
//!
//! One function per ioctl, generated with nix's ioctl macros; the request
//! numbers are checked against `<linux/if_tun.h>` in the tests below.

use std::ffi::CStr;
use std::fmt;
use std::mem::{size_of, MaybeUninit};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
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
    GetIfFlags(&'a mut IfReq),
    SetIfFlags(&'a mut IfReq),
    GetIfMtu(&'a mut IfReq),
    SetIfMtu(&'a mut IfReq),
    GetIfHwAddr(&'a mut IfReq),
    SetIfHwAddr(&'a mut IfReq),
    GetIfIndex(&'a mut IfReq),
    BridgeAddIf(&'a mut IfReq),
    BridgeDelIf(&'a mut IfReq),
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
            Ioctl::GetIfFlags(_) => "ioctl(SIOCGIFFLAGS)",
            Ioctl::SetIfFlags(_) => "ioctl(SIOCSIFFLAGS)",
            Ioctl::GetIfMtu(_) => "ioctl(SIOCGIFMTU)",
            Ioctl::SetIfMtu(_) => "ioctl(SIOCSIFMTU)",
            Ioctl::GetIfHwAddr(_) => "ioctl(SIOCGIFHWADDR)",
            Ioctl::SetIfHwAddr(_) => "ioctl(SIOCSIFHWADDR)",
            Ioctl::GetIfIndex(_) => "ioctl(SIOCGIFINDEX)",
            Ioctl::BridgeAddIf(_) => "ioctl(SIOCBRADDIF)",
            Ioctl::BridgeDelIf(_) => "ioctl(SIOCBRDELIF)",
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
    /// Reading one frame from a queue's fd without waiting.
    ReadFrame,
    /// Writing one frame to a queue's fd without waiting.
    WriteFrame,
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
fn retry_eintr(mut call: impl FnMut() -> isize) -> Result<usize, Errno> {
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
    nix::ioctl_read_bad!(get_if_flags, super::consts::SIOCGIFFLAGS, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_flags, super::consts::SIOCSIFFLAGS, IfReq);
    nix::ioctl_read_bad!(get_if_mtu, super::consts::SIOCGIFMTU, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_mtu, super::consts::SIOCSIFMTU, IfReq);
    nix::ioctl_read_bad!(get_if_hwaddr, super::consts::SIOCGIFHWADDR, IfReq);
    nix::ioctl_write_ptr_bad!(set_if_hwaddr, super::consts::SIOCSIFHWADDR, IfReq);
    nix::ioctl_read_bad!(get_if_index, super::consts::SIOCGIFINDEX, IfReq);
    nix::ioctl_write_ptr_bad!(bridge_add_if, super::consts::SIOCBRADDIF, IfReq);
    nix::ioctl_write_ptr_bad!(bridge_del_if, super::consts::SIOCBRDELIF, IfReq);
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
                Ioctl::GetIfFlags(r) => raw::get_if_flags(fd, &mut **r),
                Ioctl::SetIfFlags(r) => raw::set_if_flags(fd, &**r),
                Ioctl::GetIfMtu(r) => raw::get_if_mtu(fd, &mut **r),
                Ioctl::SetIfMtu(r) => raw::set_if_mtu(fd, &**r),
                Ioctl::GetIfHwAddr(r) => raw::get_if_hwaddr(fd, &mut **r),
                Ioctl::SetIfHwAddr(r) => raw::set_if_hwaddr(fd, &**r),
                Ioctl::GetIfIndex(r) => raw::get_if_index(fd, &mut **r),
                Ioctl::BridgeAddIf(r) => raw::bridge_add_if(fd, &**r),
                Ioctl::BridgeDelIf(r) => raw::bridge_del_if(fd, &**r),
            }
        };
        res.map(|_| ())
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
        loop {
            // SAFETY: send reads msg.len() bytes from a live slice; an
            // unconnected netlink socket sends to the kernel (port 0).
            let n = unsafe { libc::send(fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
            if n >= 0 {
                // A netlink datagram goes whole or not at all.
                return if n as usize == msg.len() {
                    Ok(())
                } else {
                    Err(Errno::EMSGSIZE)
                };
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
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
        loop {
            // SAFETY: recv writes at most buf.len() bytes into a live
            // mutable slice; MSG_TRUNC only changes the returned length.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n >= 0 {
                return Ok(n as usize);
            }
            match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            }
        }
    }
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
