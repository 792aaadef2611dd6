//! Turning an errno into an error that says what to do.
//!
//! After a failure (never on the success path) this may look at the
//! interface the request named, with rtnetlink in the calling thread's
//! network namespace (the device's): whether it exists, its kind, and for a
//! TUN/TAP device its type, multi_queue flag, owner and group. Never sysfs,
//! which shows the namespace of whoever mounted it. Only reads; nothing is
//! changed.

use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::netlink::{Link, LinkRef, Netlink};
use crate::open::Mode;
use crate::sys::consts::*;
use crate::sys::{Ioctl, Sys};

/// A failed ioctl as an error: the errno, the ioctl's label
/// (`ioctl(TUNSETOWNER)`), the interface when known, and the hint every
/// ioctl shares (CAP_NET_ADMIN for EPERM, a missing interface for ENODEV, a
/// detached queue for EBADFD). Callers add what is specific to their ioctl.
pub(crate) fn ioctl_error(errno: Errno, syscall: &'static str, ifname: Option<&str>) -> Error {
    let mut err = Error::os(errno, syscall);
    if let Some(name) = ifname {
        err = err.with_ifname(name);
    }
    // The SIOC* requests act on a link through a control socket; the TUN
    // requests on the device behind a /dev/net/tun fd.
    let link_op = syscall.starts_with("ioctl(SIOC");
    let hint = match errno {
        Errno::EPERM | Errno::EACCES if link_op => {
            "changing an interface needs CAP_NET_ADMIN in its network namespace".to_owned()
        }
        Errno::EPERM => "this needs CAP_NET_ADMIN".to_owned(),
        Errno::ENODEV if link_op => match ifname {
            Some(name) => format!("there is no interface {name} in this network namespace"),
            None => return err,
        },
        Errno::EBADFD => "the fd is not attached to the device (a detached queue?)".to_owned(),
        _ => return err,
    };
    err.with_hint(hint)
}

/// One ioctl on `fd` for the interface `ifname`; a failure becomes
/// [`ioctl_error`].
pub(crate) fn ioctl(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    op: &mut Ioctl<'_>,
    ifname: &str,
) -> Result<()> {
    let label = op.name();
    sys.ioctl(fd, op)
        .map_err(|e| ioctl_error(e, label, Some(ifname)))
}

/// The interface `name` as rtnetlink shows it in the calling thread's
/// namespace, or `None` when there is no such interface.
pub fn inspect(sys: &dyn Sys, name: &str) -> Result<Option<Link>> {
    if name.is_empty() || name.contains('%') {
        return Ok(None);
    }
    Netlink::open(sys)?.link(LinkRef::Name(name))
}

pub(crate) fn open_tun(err: Error, errno: Errno) -> Error {
    let hint = match errno {
        Errno::ENOENT => "the TUN/TAP device node is missing: load the driver (modprobe tun) \
                         or create the node (mknod /dev/net/tun c 10 200)"
            .to_owned(),
        Errno::ENODEV | Errno::ENXIO => "the TUN/TAP driver is not loaded: modprobe tun".to_owned(),
        Errno::EACCES | Errno::EPERM => format!(
            "this process (uid {}) may not open the TUN/TAP clone device: run as root, or \
             make the node readable and writable (distributions ship it 0666)",
            // SAFETY: getuid cannot fail.
            unsafe { libc::getuid() }
        ),
        Errno::EMFILE | Errno::ENFILE => {
            "out of file descriptors: every queue needs one fd (raise the fd limit)".to_owned()
        }
        _ => return err,
    };
    err.with_hint(hint)
}

pub(crate) fn open_vhost(err: Error, errno: Errno) -> Error {
    let hint = match errno {
        Errno::ENOENT | Errno::ENODEV | Errno::ENXIO => {
            "vhost-net is not available: load the vhost_net module (modprobe vhost_net), \
             or open with vhost: 'auto' (use it when present) or false"
        }
        Errno::EACCES | Errno::EPERM => {
            "this process may not open /dev/vhost-net: run as root or add the user to the \
             group that owns it (often kvm), or open with vhost: 'auto' or false"
        }
        Errno::EMFILE | Errno::ENFILE => {
            "out of file descriptors: every queue needs one vhost fd (raise the fd limit)"
        }
        _ => return err,
    };
    err.with_hint(hint)
}

/// Explain a failed TUNSETIFF for `name` with `flags`.
pub(crate) fn set_iff(sys: &dyn Sys, errno: Errno, name: &str, flags: u16) -> Error {
    let want_tun = flags & IFF_TUN != 0;
    let (kind, other) = if want_tun {
        ("TUN", "TAP")
    } else {
        ("TAP", "TUN")
    };
    let shown = match name.is_empty() {
        false => name,
        true => Mode::of_flags(flags).template(),
    };
    let err = ioctl_error(errno, "ioctl(TUNSETIFF)", Some(shown));
    // A look-up that fails only costs the hint.
    let info = inspect(sys, name).ok().flatten();
    let want_mq = flags & IFF_MULTI_QUEUE != 0;
    let hint = match (errno, &info) {
        (Errno::EPERM, None) => format!(
            "creating a {kind} device needs CAP_NET_ADMIN in this network namespace: run as root \
             or grant CAP_NET_ADMIN, or attach to a persistent device created for this user \
             (uid {})",
            // SAFETY: getuid cannot fail.
            unsafe { libc::getuid() }
        ),
        (Errno::EPERM, Some(i)) => {
            let owner = match i.tun.map(|t| (t.owner, t.group)) {
                Some((Some(o), Some(g))) => format!(" (it belongs to uid {o} and gid {g})"),
                Some((Some(o), None)) => format!(" (it belongs to uid {o})"),
                Some((None, Some(g))) => format!(" (it belongs to gid {g})"),
                _ => " (it has no owner or group set)".to_owned(),
            };
            format!(
                "{name} exists and attaching to it needs CAP_NET_ADMIN or being its \
                 owner/group{owner}"
            )
        }
        (Errno::EBUSY, Some(_)) if flags & IFF_TUN_EXCL != 0 => {
            format!("{name} already exists and exclusive creation was asked for; pick another name")
        }
        (Errno::EBUSY, Some(_)) => {
            // Name the holders (a failed /proc walk only loses that detail).
            let holders = crate::holders::tap_holders(sys, name).unwrap_or_default();
            let by = match holders.is_empty() {
                true => "(by this or another process)".to_owned(),
                false => format!("and held by {}", crate::holders::describe(&holders)),
            };
            return err
                .with_hint(format!(
                    "{name} is a single-queue device that is already attached {by}; close that \
                     fd first, or pick another name"
                ))
                .with_holders(holders);
        }
        (Errno::EINVAL, Some(i)) => match i.tun {
            None => format!(
                "{name} exists and is not a TUN/TAP device{}; pick another name",
                i.kind
                    .as_deref()
                    .map(|k| format!(" (it is a {k})"))
                    .unwrap_or_default()
            ),
            Some(t) if t.tap == want_tun => {
                format!("{name} exists and is a {other} device, not {kind}; pick another name")
            }
            Some(t) if want_mq && !t.multi_queue => format!(
                "{name} already exists without multi_queue; delete it or open it with queues: 1"
            ),
            Some(t) if !want_mq && t.multi_queue => format!(
                "{name} already exists with multi_queue; open it with queues of 2 or more, or \
                 delete it"
            ),
            Some(_) => format!("the kernel refused to attach to the existing device {name}"),
        },
        (Errno::E2BIG, _) => format!(
            "{name} already has the kernel's maximum of 256 queues (MAX_TAP_QUEUES, enabled \
             and disabled counted together)"
        ),
        (Errno::EEXIST, _) => "this fd is already attached to a device".to_owned(),
        (Errno::ENFILE, _) => {
            "the kernel could not allocate a new interface name for the template".to_owned()
        }
        _ => return err,
    };
    err.with_hint(hint)
}

/// Explain a failed attach of [`crate::delete_tap`]: the same errno as for an
/// open, told in terms of deleting.
pub(crate) fn for_delete(err: Error, name: &str, info: Option<&Link>) -> Error {
    let hint = match err.errno() {
        Some(Errno::EINVAL) => match info {
            Some(i) if i.tun.is_none() => format!(
                "{name} is not a TUN/TAP device{}: deleteTap removes TUN/TAP devices only (remove \
                 other links with ip link del)",
                i.kind
                    .as_deref()
                    .map(|k| format!(" (it is a {k})"))
                    .unwrap_or_default()
            ),
            _ => format!("the kernel refused to attach to {name} to delete it"),
        },
        Some(Errno::EBUSY) => format!(
            "{name} is a single-queue device that another process holds, so it cannot be \
             attached to for deleting: it goes away when that process closes it if it is not \
             persistent; otherwise delete it once the process has let go"
        ),
        Some(Errno::EPERM) => {
            let owner = match info.and_then(|i| i.tun).map(|t| (t.owner, t.group)) {
                Some((Some(o), _)) => format!(" (it belongs to uid {o})"),
                Some((None, Some(g))) => format!(" (it belongs to gid {g})"),
                _ => String::new(),
            };
            format!("deleting {name} needs CAP_NET_ADMIN or being its owner or group{owner}")
        }
        _ => return err,
    };
    err.with_hint(hint)
}
