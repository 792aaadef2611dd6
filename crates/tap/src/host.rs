//! Host devices by name, without an open [`crate::Tap`]: deleting a
//! persistent TAP or TUN device.

use std::ffi::CStr;
use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::diagnose;
use crate::error::Result;
use crate::link;
use crate::rules;
use crate::sys::consts::*;
use crate::sys::{Ioctl, Sys};
use crate::tun;

/// Delete a persistent TAP (or TUN) device: attach to it, TUNSETPERSIST 0,
/// close.
/// A device still held by another process goes away when that one closes
/// it (a held single-queue device cannot be attached: EBUSY).
pub fn delete_tap(sys: &dyn Sys, name: &str, tun_path: &CStr) -> Result<()> {
    let name = rules::check_delete_name(name)?;
    // Fails with ENODEV ("there is no interface ...") rather than creating one.
    link::ifindex(sys, &name)?;
    let fd = tun::open_tun(sys, tun_path)?;
    // Never create: attach exclusively is impossible, so check the type first
    // and try both multi-queue settings (and both kinds, when sysfs cannot
    // tell: the kernel refuses the wrong one with EINVAL).
    let known = diagnose::inspect(sys, &name).and_then(|i| i.tun_flags);
    let mq_first = known.is_some_and(|f| f & IFF_MULTI_QUEUE != 0);
    let kinds: &[u16] = match known {
        Some(f) if f & IFF_TUN != 0 => &[IFF_TUN],
        Some(_) => &[IFF_TAP],
        None => &[IFF_TAP, IFF_TUN],
    };
    let mut order = Vec::with_capacity(4);
    for &kind in kinds {
        let base = kind | IFF_NO_PI;
        if mq_first {
            order.extend([base | IFF_MULTI_QUEUE, base]);
        } else {
            order.extend([base, base | IFF_MULTI_QUEUE]);
        }
    }
    let mut last = None;
    for flags in order {
        match tun::set_iff(sys, fd.as_fd(), &name, flags) {
            Ok(_) => {
                last = None;
                break;
            }
            Err(e) if e.errno() == Some(Errno::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    if let Some(e) = last {
        return Err(e);
    }
    diagnose::ioctl(sys, fd.as_fd(), &mut Ioctl::TunSetPersist(false), &name)?;
    drop(fd);
    Ok(())
}
