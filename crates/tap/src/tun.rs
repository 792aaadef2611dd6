//! The `/dev/net/tun` and `/dev/vhost-net` fd primitives shared by opening,
//! probing and deleting: open the clone device or vhost-net, TUNGETFEATURES,
//! TUNGETIFF, TUNSETIFF with its explained errors.

use std::ffi::CStr;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;

use crate::diagnose;
use crate::error::{Error, Result};
use crate::open::Tristate;
use crate::sys::{IfReq, Ioctl, Sys};

/// Where the TUN/TAP clone device lives.
pub const TUN_PATH: &str = "/dev/net/tun";
/// Where the vhost-net device lives.
pub const VHOST_NET_PATH: &str = "/dev/vhost-net";

pub(crate) fn path_str(p: &CStr) -> String {
    p.to_string_lossy().into_owned()
}

/// Open the TUN/TAP clone device.
pub fn open_tun(sys: &dyn Sys, path: &CStr) -> Result<OwnedFd> {
    sys.open(path, libc::O_RDWR)
        .map_err(|e| diagnose::open_tun(Error::os(e, "open").with_path(path_str(path)), e))
}

/// Open one vhost-net fd.
pub fn open_vhost(sys: &dyn Sys, path: &CStr) -> Result<OwnedFd> {
    sys.open(path, libc::O_RDWR)
        .map_err(|e| diagnose::open_vhost(Error::os(e, "open").with_path(path_str(path)), e))
}

/// The vhost-net fds of `queues` queues, as `want` asks: none (`Off`), one
/// per queue or the error (`On`), one per queue or none (`Auto`: a partial
/// set is closed when the Err is dropped).
pub(crate) fn open_vhost_fds(
    sys: &dyn Sys,
    path: &CStr,
    queues: usize,
    want: Tristate,
) -> Result<Vec<OwnedFd>> {
    let all = || (0..queues).map(|_| open_vhost(sys, path)).collect();
    match want {
        Tristate::Off => Ok(Vec::new()),
        Tristate::On => all(),
        Tristate::Auto => Ok(all().unwrap_or_default()),
    }
}

/// TUNGETFEATURES on `fd`.
pub fn get_features(sys: &dyn Sys, fd: BorrowedFd<'_>) -> std::result::Result<u32, Errno> {
    let mut v: libc::c_uint = 0;
    sys.ioctl(fd, &mut Ioctl::TunGetFeatures(&mut v))?;
    Ok(v)
}

/// TUNGETIFF on `fd`: the attached device's name and flags.
pub fn get_iff(sys: &dyn Sys, fd: BorrowedFd<'_>) -> std::result::Result<(String, u16), Errno> {
    let mut req = IfReq::zeroed();
    sys.ioctl(fd, &mut Ioctl::TunGetIff(&mut req))?;
    Ok((req.name(), req.flags()))
}

/// [`set_iff`] with the bare errno on failure, for a caller that handles
/// some errnos itself and explains ([`diagnose::set_iff`]) only the errors
/// it returns: the explanation looks the name up with rtnetlink and, for
/// EBUSY, walks `/proc`.
pub(crate) fn set_iff_raw(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    name: &str,
    flags: u16,
) -> std::result::Result<String, Errno> {
    let mut req = IfReq::with_name_flags(name, flags);
    sys.ioctl(fd, &mut Ioctl::TunSetIff(&mut req))?;
    Ok(req.name())
}

/// Attach `fd` to the device named `name` with `flags` (TUNSETIFF). Returns
/// the device's name as the kernel filled it in.
pub(crate) fn set_iff(sys: &dyn Sys, fd: BorrowedFd<'_>, name: &str, flags: u16) -> Result<String> {
    set_iff_raw(sys, fd, name, flags).map_err(|e| diagnose::set_iff(sys, e, name, flags))
}
