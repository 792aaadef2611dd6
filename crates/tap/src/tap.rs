//! Opening TAP devices: the Ganeti `OpenTap(name, features)` job, without its
//! leaks. One `/dev/net/tun` fd per queue, TUNGETFEATURES probed before
//! asking for IFF_VNET_HDR or IFF_MULTI_QUEUE, one `/dev/vhost-net` fd per
//! queue when asked. Every fd is close-on-exec and owned by the returned
//! [`Tap`]; on any failure everything opened so far is closed (and so a
//! device the call created is gone).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::diagnose;
use crate::error::{Error, Result};
use crate::name::parse_name;
use crate::sys::consts::*;
use crate::sys::{IfReq, Ioctl, Sys};

/// The kernel's MAX_TAP_QUEUES.
pub const MAX_QUEUES: u32 = 256;
/// Where the TUN/TAP clone device lives.
pub const TUN_PATH: &str = "/dev/net/tun";
/// Where the vhost-net device lives.
pub const VHOST_NET_PATH: &str = "/dev/vhost-net";

/// A three-way choice: never, when the host supports it, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Want {
    Off,
    #[default]
    Auto,
    On,
}

/// What to open. `Default` is the kernel-named single-queue tap with
/// vnet_hdr when supported and no vhost.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// `""` (kernel picks `tap%d`), a `%d` template, or an exact name.
    pub name: String,
    /// 1..=256. More than one makes a multi-queue device.
    pub queues: u32,
    pub vnet_hdr: Want,
    pub vhost: Want,
    /// The clone device; tests point it elsewhere.
    pub tun_path: CString,
    /// The vhost-net device; tests point it elsewhere.
    pub vhost_path: CString,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            name: String::new(),
            queues: 1,
            vnet_hdr: Want::Auto,
            vhost: Want::Off,
            tun_path: CString::new(TUN_PATH).unwrap(),
            vhost_path: CString::new(VHOST_NET_PATH).unwrap(),
        }
    }
}

/// An open TAP device: its name and the fds that keep it alive. Dropping it
/// closes every fd; a non-persistent device disappears with its last fd.
#[derive(Debug)]
pub struct Tap {
    ifname: String,
    tap_fds: Vec<OwnedFd>,
    vhost_fds: Vec<OwnedFd>,
    flags: u16,
    features: u32,
}

impl Tap {
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// One fd per queue, all attached to the same device.
    pub fn tap_fds(&self) -> &[OwnedFd] {
        &self.tap_fds
    }

    /// One `/dev/vhost-net` fd per queue, or none.
    pub fn vhost_fds(&self) -> &[OwnedFd] {
        &self.vhost_fds
    }

    pub fn raw_tap_fds(&self) -> Vec<RawFd> {
        self.tap_fds.iter().map(|f| f.as_raw_fd()).collect()
    }

    pub fn raw_vhost_fds(&self) -> Vec<RawFd> {
        self.vhost_fds.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// The device's flags as TUNGETIFF reported them after opening.
    pub fn flags(&self) -> u16 {
        self.flags
    }

    /// TUNGETFEATURES of this host.
    pub fn features(&self) -> u32 {
        self.features
    }

    pub fn vnet_hdr(&self) -> bool {
        self.flags & IFF_VNET_HDR != 0
    }

    pub fn multi_queue(&self) -> bool {
        self.flags & IFF_MULTI_QUEUE != 0
    }

    /// The first queue's fd, on which per-device ioctls are made.
    pub fn control_fd(&self) -> BorrowedFd<'_> {
        self.tap_fds[0].as_fd()
    }

    /// Close every fd (the same as dropping). Returns how many were closed.
    pub fn close(self) -> usize {
        let n = self.tap_fds.len() + self.vhost_fds.len();
        drop(self);
        n
    }
}

/// The flags TUNSETIFF is asked for, given the request and the host's
/// TUNGETFEATURES. Never IFF_ONE_QUEUE: it has had no effect since Linux 3.8.
pub fn compute_flags(features: u32, queues: u32, vnet_hdr: Want) -> Result<u16> {
    let mut flags = IFF_TAP | IFF_NO_PI;
    let has = |f: u16| features & u32::from(f) != 0;
    match vnet_hdr {
        Want::Off => {}
        Want::Auto => {
            if has(IFF_VNET_HDR) {
                flags |= IFF_VNET_HDR
            }
        }
        Want::On => {
            if !has(IFF_VNET_HDR) {
                return Err(Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(
                    "this kernel's TUN driver does not offer IFF_VNET_HDR; use vnetHdr: 'auto' or false",
                ));
            }
            flags |= IFF_VNET_HDR
        }
    }
    if queues > 1 {
        if !has(IFF_MULTI_QUEUE) {
            return Err(
                Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(format!(
                "this kernel's TUN driver does not offer IFF_MULTI_QUEUE (Linux 3.8 or later); \
                 {queues} queues cannot be opened, use queues: 1"
            )),
            );
        }
        flags |= IFF_MULTI_QUEUE;
    }
    Ok(flags)
}

fn path_str(p: &CStr) -> String {
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

fn open_vhost_set(sys: &dyn Sys, opts: &OpenOptions) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(opts.queues as usize);
    for _ in 0..opts.queues {
        fds.push(open_vhost(sys, &opts.vhost_path)?);
    }
    Ok(fds)
}

/// Attach `fd` to the device named `name` with `flags` (TUNSETIFF). Returns
/// the device's name as the kernel filled it in.
fn set_iff(sys: &dyn Sys, fd: BorrowedFd<'_>, name: &str, flags: u16) -> Result<String> {
    let mut req = IfReq::with_name_flags(name, flags);
    sys.ioctl(fd, &mut Ioctl::TunSetIff(&mut req))
        .map_err(|e| diagnose::set_iff(sys, e, name, flags))?;
    Ok(req.name())
}

/// Open a TAP device as `opts` asks. See the module docs.
pub fn open_tap(sys: &dyn Sys, opts: &OpenOptions) -> Result<Tap> {
    let name = parse_name(&opts.name)?;
    if !(1..=MAX_QUEUES).contains(&opts.queues) {
        return Err(Error::range(
            "queues",
            format!("queues must be 1 to {MAX_QUEUES}, got {}", opts.queues),
        ));
    }
    let queues = opts.queues as usize;

    // vhost first: a missing /dev/vhost-net fails before any device exists.
    let vhost_fds = match opts.vhost {
        Want::Off => Vec::new(),
        Want::On => open_vhost_set(sys, opts)?,
        // All or nothing: a partial set is closed when the Err is dropped.
        Want::Auto => open_vhost_set(sys, opts).unwrap_or_default(),
    };

    let first = open_tun(sys, &opts.tun_path)?;
    let features = get_features(sys, first.as_fd()).map_err(|e| {
        Error::os(e, "ioctl(TUNGETFEATURES)")
            .with_path(path_str(&opts.tun_path))
            .with_hint("the TUN driver did not report its features; is this really /dev/net/tun?")
    })?;
    let flags = compute_flags(features, opts.queues, opts.vnet_hdr)?;

    let mut tap_fds = Vec::with_capacity(queues);
    let ifname = set_iff(sys, first.as_fd(), name.as_request(), flags)?;
    tap_fds.push(first);
    for _ in 1..queues {
        let fd = open_tun(sys, &opts.tun_path)?;
        set_iff(sys, fd.as_fd(), &ifname, flags)?;
        tap_fds.push(fd);
    }

    let (_, actual) = get_iff(sys, tap_fds[0].as_fd())
        .map_err(|e| Error::os(e, "ioctl(TUNGETIFF)").with_ifname(ifname.clone()))?;

    Ok(Tap {
        ifname,
        tap_fds,
        vhost_fds,
        flags: actual,
        features,
    })
}

/// What this host's TUN driver and vhost-net support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// TUNGETFEATURES, or `None` when /dev/net/tun could not be opened or
    /// did not answer.
    pub raw: Option<u32>,
    /// Whether `/dev/vhost-net` can be opened read-write by this process.
    pub vhost_net: bool,
}

impl Features {
    pub fn has(&self, flag: u16) -> bool {
        self.raw.is_some_and(|r| r & u32::from(flag) != 0)
    }
}

/// Ask the kernel what it supports: open the clone device, TUNGETFEATURES,
/// close; open and close `/dev/vhost-net`. Never fails.
pub fn probe_features(sys: &dyn Sys, tun_path: &CStr, vhost_path: &CStr) -> Features {
    let raw = open_tun(sys, tun_path)
        .ok()
        .and_then(|fd| get_features(sys, fd.as_fd()).ok());
    let vhost_net = open_vhost(sys, vhost_path).is_ok();
    Features { raw, vhost_net }
}

/// TUNGETFEATURES for an arbitrary fd, `None` when the ioctl fails (e.g. a
/// regular file), like Ganeti's `_GetTunFeatures`.
pub fn tun_features(sys: &dyn Sys, fd: BorrowedFd<'_>) -> Option<u32> {
    get_features(sys, fd).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u32 =
        (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE) as u32;

    #[test]
    fn flags_follow_features_and_request() {
        assert_eq!(
            compute_flags(ALL, 1, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 1, Want::Off).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        assert_eq!(
            compute_flags(ALL, 1, Want::On).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 4, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let old = (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE) as u32;
        assert_eq!(
            compute_flags(old, 1, Want::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        let e = compute_flags(old, 1, Want::On).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        let e = compute_flags(old, 2, Want::Off).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        assert!(e.to_string().contains("IFF_MULTI_QUEUE"), "{e}");
        // Never IFF_ONE_QUEUE, never IFF_TUN.
        for q in [1, 2, 256] {
            for w in [Want::Off, Want::Auto, Want::On] {
                let f = compute_flags(ALL, q, w).unwrap();
                assert_eq!(f & (IFF_ONE_QUEUE | IFF_TUN), 0);
            }
        }
    }
}
