//! What this host's TUN driver and vhost-net support: TUNGETFEATURES,
//! whether `/dev/vhost-net` opens, and which offloads the kernel accepts.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use nix::errno::Errno;

use crate::diagnose::ioctl_error;
use crate::error::Result;
use crate::netns::{self, NetNs, NetNsSpec};
use crate::open::{open_tap, OpenOptions, Tristate};
use crate::sys::consts::*;
use crate::sys::{Ioctl, Sys};
use crate::tun;

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
/// close; open and close `/dev/vhost-net`; in `netns` when given. A device
/// that cannot be opened is reported (`raw: None`, `vhost_net: false`),
/// never an error; only a namespace that cannot be entered is.
pub fn probe_features(
    sys: &dyn Sys,
    tun_path: &CStr,
    vhost_path: &CStr,
    netns: Option<&NetNsSpec>,
) -> Result<Features> {
    let ns = NetNs::open_opt(sys, netns)?;
    netns::run_in(sys, ns.as_ref(), || {
        let raw = tun::open_tun(sys, tun_path)
            .ok()
            .and_then(|fd| tun::get_features(sys, fd.as_fd()).ok());
        let vhost_net = tun::open_vhost(sys, vhost_path).is_ok();
        Ok(Features { raw, vhost_net })
    })
}

/// TUNGETFEATURES for an arbitrary fd, `None` when the ioctl fails (e.g. a
/// regular file), like Ganeti's `_GetTunFeatures`.
pub fn get_tun_features(sys: &dyn Sys, fd: BorrowedFd<'_>) -> Option<u32> {
    tun::get_features(sys, fd).ok()
}

/// Which TUNSETOFFLOAD bits this kernel accepts: a throwaway TAP device
/// (kernel-named, vnet_hdr; in `netns` when given) is opened and each
/// offload tried with csum. Needs CAP_NET_ADMIN there.
pub fn probe_offloads(sys: &dyn Sys, tun_path: &CStr, netns: Option<&NetNsSpec>) -> Result<u32> {
    let opts = OpenOptions {
        tun_path: tun_path.to_owned(),
        vnet_hdr: Tristate::On,
        netns: netns.cloned(),
        ..OpenOptions::default()
    };
    let tap = open_tap(sys, &opts)?;
    let mut accepted = 0;
    for bits in [
        TUN_F_CSUM,
        TUN_F_CSUM | TUN_F_TSO4,
        TUN_F_CSUM | TUN_F_TSO6,
        TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN,
        TUN_F_CSUM | TUN_F_UFO,
        TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6,
    ] {
        match sys.ioctl(tap.control_fd(), &mut Ioctl::TunSetOffload(bits)) {
            Ok(()) => accepted |= bits,
            Err(Errno::EINVAL) => {}
            Err(e) => return Err(ioctl_error(e, "ioctl(TUNSETOFFLOAD)", Some(tap.ifname()))),
        }
    }
    Ok(accepted)
}
