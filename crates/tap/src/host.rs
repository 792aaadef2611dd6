//! Host devices by name, without an open [`crate::Tap`]: deleting a
//! persistent TAP or TUN device, or a macvtap.

use std::ffi::CStr;
use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::diagnose;
use crate::error::Result;
use crate::link;
use crate::netns::{self, NetNs, NetNsSpec};
use crate::rules;
use crate::sys::consts::*;
use crate::sys::{Ioctl, Sys};
use crate::tun;

/// Delete a persistent TAP (or TUN) device: attach to it, TUNSETPERSIST 0,
/// close.
/// A device still held by another process goes away when that one closes
/// it (a held single-queue device cannot be attached: EBUSY). A macvtap
/// (its kind read with rtnetlink) is deleted with RTM_DELLINK, at once:
/// the fds a process still holds stop carrying frames. With `netns`, the
/// device named is the one in that namespace.
pub fn delete_tap(
    sys: &dyn Sys,
    name: &str,
    tun_path: &CStr,
    netns: Option<&NetNsSpec>,
) -> Result<()> {
    let name = rules::check_delete_name(name)?;
    let ns = NetNs::open_opt(sys, netns)?;
    netns::run_in(sys, ns.as_ref(), || delete_here(sys, &name, tun_path))
}

fn delete_here(sys: &dyn Sys, name: &str, tun_path: &CStr) -> Result<()> {
    // Fails with ENODEV ("there is no interface ...") rather than creating one.
    link::ifindex(sys, name)?;
    let info = diagnose::inspect(sys, name).ok().flatten();
    if let Some(l) = info
        .as_ref()
        .filter(|l| l.kind.as_deref() == Some("macvtap"))
    {
        return crate::macvtap::delete_here(sys, l);
    }
    let fd = tun::open_tun(sys, tun_path)?;
    // Never create: attaching exclusively is impossible, so attach with the
    // device's own type and multi-queue flag (read with rtnetlink), or try
    // both kinds and multi-queue settings when that could not be read (the
    // kernel refuses the wrong ones with EINVAL).
    let order: Vec<u16> = match info.as_ref().and_then(|l| l.tun) {
        Some(t) => {
            let kind = if t.tap { IFF_TAP } else { IFF_TUN };
            let mq = if t.multi_queue { IFF_MULTI_QUEUE } else { 0 };
            vec![kind | IFF_NO_PI | mq]
        }
        None => [IFF_TAP, IFF_TUN]
            .into_iter()
            .flat_map(|k| [k | IFF_NO_PI, k | IFF_NO_PI | IFF_MULTI_QUEUE])
            .collect(),
    };
    let mut last = None;
    for flags in order {
        match tun::set_iff(sys, fd.as_fd(), name, flags) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) if e.errno() == Some(Errno::EINVAL) => last = Some(e),
            Err(e) => return Err(diagnose::for_delete(e, name, info.as_ref())),
        }
    }
    if let Some(e) = last {
        return Err(diagnose::for_delete(e, name, info.as_ref()));
    }
    diagnose::ioctl(sys, fd.as_fd(), &mut Ioctl::TunSetPersist(false), name)?;
    drop(fd);
    Ok(())
}
