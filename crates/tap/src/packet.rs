//! Frames through a queue's fd: one non-blocking read or write at a time
//! (through [`Sys::read_frame`] / [`Sys::write_frame`], which never change
//! the fd's flags), with errors that say what to do. Waiting for the fd is
//! the caller's job (the Node binding watches it on the event loop).
//!
//! With IFF_VNET_HDR, every frame is preceded by a virtio-net header of the
//! device's vnet header size (10, 12 or 20 bytes): a read returns header and
//! frame together, a write takes the header as its first part.

use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use crate::device::Tap;
use crate::error::{Error, Result};
use crate::fdpass::Step;
use crate::open::Mode;
use crate::rules;
use crate::sys::Sys;

/// A read buffer that holds any frame: the longest frame (a 64 KiB GSO
/// frame) and the longest vnet header, with room to spare.
pub const READ_BUFFER_BYTES: usize = 128 << 10;

/// What the kernel's errno means for a frame read or write.
fn frame_error(errno: Errno, syscall: &'static str, ifname: &str, mode: Mode) -> Error {
    let err = Error::os(errno, syscall).with_ifname(ifname);
    let hint = match (errno, syscall) {
        (Errno::EBADFD, _) => "the queue is not attached to the device (disabled with setQueueEnabled?)",
        (Errno::EIO, "write") => "the link is down: bring it up (setLinkUp) before writing frames",
        (Errno::EINVAL, "write") if mode == Mode::Tun => {
            "the kernel refused the packet: a TUN device takes IPv4 or IPv6 packets (version 4 or 6 in the first byte)"
        }
        (Errno::EINVAL, "write") => "the kernel refused the frame (a malformed virtio-net header?)",
        (Errno::EFAULT, _) => "the buffer is not readable or writable",
        _ => return err,
    };
    err.with_hint(hint)
}

/// Read one frame (with its vnet header, if the device has one) into `buf`
/// (which may be uninitialised; give it [`READ_BUFFER_BYTES`] so no frame is
/// cut short) without waiting: `Done(length)`, the first `length` bytes of
/// `buf` then initialised, or `WouldBlock` when the queue is empty.
pub fn read_frame(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    buf: &mut [MaybeUninit<u8>],
    ifname: &str,
    mode: Mode,
) -> Result<Step<usize>> {
    match sys.read_frame(fd, buf) {
        Ok(n) => Ok(Step::Done(n.min(buf.len()))),
        Err(Errno::EAGAIN) => Ok(Step::WouldBlock),
        Err(e) => Err(frame_error(e, "read", ifname, mode)),
    }
}

/// [`read_frame`], appending the frame to `buf`: room for the longest frame
/// is reserved first (fallibly: [`Error::NoMemory`]).
pub fn read_frame_into(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    ifname: &str,
    mode: Mode,
) -> Result<Step<usize>> {
    buf.try_reserve(READ_BUFFER_BYTES)
        .map_err(|_| Error::no_memory("a frame", buf.len() + READ_BUFFER_BYTES))?;
    let spare = &mut buf.spare_capacity_mut()[..READ_BUFFER_BYTES];
    let step = read_frame(sys, fd, spare, ifname, mode)?;
    if let Step::Done(n) = step {
        // SAFETY: the kernel wrote n bytes into the spare capacity right
        // after the initialised part (Sys::read_frame's contract).
        unsafe { buf.set_len(buf.len() + n) };
    }
    Ok(step)
}

/// Write `header` (empty without vnet header) and `frame` as one frame
/// without waiting: `WouldBlock` when the queue cannot take it now.
pub fn write_frame(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    header: &[u8],
    frame: &[u8],
    ifname: &str,
    mode: Mode,
) -> Result<Step<usize>> {
    let parts: &[&[u8]] = if header.is_empty() {
        &[frame]
    } else {
        &[header, frame]
    };
    match sys.write_frame(fd, parts) {
        Ok(n) => Ok(Step::Done(n)),
        Err(Errno::EAGAIN) => Ok(Step::WouldBlock),
        Err(e) => Err(frame_error(e, "write", ifname, mode)),
    }
}

impl Tap {
    /// TUN or TAP.
    pub fn mode(&self) -> Mode {
        Mode::of_flags(self.flags)
    }

    /// The fd of queue `index`.
    pub fn queue_fd(&self, index: usize) -> Result<BorrowedFd<'_>> {
        rules::check_queue(index, self.tap_fds.len())?;
        Ok(std::os::fd::AsFd::as_fd(&self.tap_fds[index]))
    }

    /// How many bytes of vnet header precede each frame: 0 without
    /// IFF_VNET_HDR, else TUNGETVNETHDRSZ.
    pub fn frame_header_len(&self, sys: &dyn Sys) -> Result<usize> {
        if !self.vnet_hdr() {
            return Ok(0);
        }
        Ok(self.get_vnet_hdr_size(sys)?.max(0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FaultSys;
    use crate::sys::{Call, RealSys};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixDatagram;

    /// A datagram socket pair stands in for a queue: one read is one frame,
    /// and neither end is made non-blocking.
    #[test]
    fn reads_and_writes_do_not_wait_and_leave_the_fd_blocking() {
        let (a, b) = UnixDatagram::pair().unwrap();
        let mut buf = Vec::new();
        let empty = read_frame_into(&RealSys, b.as_fd(), &mut buf, "q0", Mode::Tap).unwrap();
        assert_eq!(empty, Step::WouldBlock);
        assert!(buf.is_empty());
        let n = write_frame(&RealSys, a.as_fd(), b"hd", b"frame", "q0", Mode::Tap).unwrap();
        assert_eq!(n, Step::Done(7));
        write_frame(&RealSys, a.as_fd(), &[], b"second", "q0", Mode::Tap).unwrap();
        assert_eq!(
            read_frame_into(&RealSys, b.as_fd(), &mut buf, "q0", Mode::Tap).unwrap(),
            Step::Done(7)
        );
        assert_eq!(
            read_frame_into(&RealSys, b.as_fd(), &mut buf, "q0", Mode::Tap).unwrap(),
            Step::Done(6)
        );
        assert_eq!(buf, b"hdframesecond", "appended one after the other");
        for fd in [a.as_fd(), b.as_fd()] {
            use std::os::fd::AsRawFd;
            // SAFETY: F_GETFL on a live fd.
            let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
            assert_eq!(fl & libc::O_NONBLOCK, 0);
        }
    }

    #[test]
    fn injected_failures_name_the_call_and_the_device() {
        let (a, _b) = UnixDatagram::pair().unwrap();
        let sys = FaultSys::new(RealSys, 1, Errno::EBADFD);
        let mut buf = Vec::new();
        let e = read_frame_into(&sys, a.as_fd(), &mut buf, "q0", Mode::Tap).unwrap_err();
        assert_eq!(e.code(), "EBADFD");
        assert!(e.to_string().contains("read 'q0'"), "{e}");
        assert!(e.to_string().contains("setQueueEnabled"), "{e}");
        assert_eq!(sys.calls(), vec![Call::ReadFrame]);
        let sys = FaultSys::new(RealSys, 1, Errno::EIO);
        let e = write_frame(&sys, a.as_fd(), &[], b"frame", "q0", Mode::Tap).unwrap_err();
        assert_eq!(e.code(), "EIO");
        assert!(e.to_string().contains("setLinkUp"), "{e}");
        assert_eq!(sys.calls(), vec![Call::WriteFrame]);
        let sys = FaultSys::new(RealSys, 1, Errno::EINVAL);
        let e = write_frame(&sys, a.as_fd(), &[], b"frame", "t0", Mode::Tun).unwrap_err();
        assert!(e.to_string().contains("IPv4 or IPv6"), "{e}");
    }
}
