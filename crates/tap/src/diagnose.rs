//! Turning an errno into an error that says what to do.
//!
//! After a failure (never on the success path) this may look at the
//! interface the request named: whether it exists (SIOCGIFINDEX, which sees
//! the caller's network namespace) and, when sysfs shows the same interface
//! (same ifindex, so the sysfs mount belongs to this namespace), its
//! `tun_flags`, `owner` and `group`. Only reads; nothing is changed.

use std::fs;
use std::os::fd::BorrowedFd;

use nix::errno::Errno;

use crate::error::{Error, Result};
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

/// What we could learn about an existing interface.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IfInfo {
    pub ifindex: i32,
    /// `tun_flags` from sysfs: `None` when the device is not a tun/tap (or
    /// sysfs shows another namespace, see `sysfs_matches`).
    pub tun_flags: Option<u16>,
    pub owner: Option<i64>,
    pub group: Option<i64>,
    /// Whether sysfs' view of this name is the same device.
    pub sysfs_matches: bool,
    /// `bridge`, `veth`, ... when sysfs tells.
    pub kind: Option<String>,
}

fn read_sysfs(name: &str, attr: &str) -> Option<String> {
    fs::read_to_string(format!("/sys/class/net/{name}/{attr}"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn parse_hex(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Look `name` up; `None` when it does not exist in this namespace.
pub fn inspect(sys: &dyn Sys, name: &str) -> Option<IfInfo> {
    if name.is_empty() || name.contains('%') {
        return None;
    }
    let ifindex = crate::link::ifindex(sys, name).ok()?;
    let sysfs_matches = read_sysfs(name, "ifindex")
        .and_then(|s| s.parse::<i32>().ok())
        .is_some_and(|i| i == ifindex);
    let mut info = IfInfo {
        ifindex,
        sysfs_matches,
        ..Default::default()
    };
    if sysfs_matches {
        info.tun_flags = read_sysfs(name, "tun_flags").and_then(|s| parse_hex(&s));
        info.owner = read_sysfs(name, "owner").and_then(|s| s.parse().ok());
        info.group = read_sysfs(name, "group").and_then(|s| s.parse().ok());
        info.kind = if fs::metadata(format!("/sys/class/net/{name}/bridge")).is_ok() {
            Some("bridge".into())
        } else {
            read_sysfs(name, "uevent").and_then(|u| {
                u.lines()
                    .find_map(|l| l.strip_prefix("DEVTYPE=").map(str::to_owned))
            })
        };
    }
    Some(info)
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
    let shown = match (name.is_empty(), want_tun) {
        (false, _) => name,
        (true, true) => "tun%d",
        (true, false) => "tap%d",
    };
    let err = ioctl_error(errno, "ioctl(TUNSETIFF)", Some(shown));
    let info = inspect(sys, name);
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
            let owner = match (i.owner, i.group) {
                (Some(o), Some(g)) if o >= 0 || g >= 0 => {
                    format!(" (it belongs to uid {o}, gid {g}; -1 means nobody)")
                }
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
        (Errno::EBUSY, Some(_)) => format!(
            "{name} is a single-queue device that is already attached (by this or another \
             process); close that fd first, or pick another name"
        ),
        (Errno::EINVAL, Some(i)) if i.sysfs_matches => match i.tun_flags {
            None => format!(
                "{name} exists and is not a TUN/TAP device{}; pick another name",
                i.kind
                    .as_deref()
                    .map(|k| format!(" (it is a {k})"))
                    .unwrap_or_default()
            ),
            Some(f) if (f & IFF_TUN != 0) != want_tun => {
                format!("{name} exists and is a {other} device, not {kind}; pick another name")
            }
            Some(f) if want_mq && f & IFF_MULTI_QUEUE == 0 => format!(
                "{name} already exists without multi_queue; delete it or open it with queues: 1"
            ),
            Some(f) if !want_mq && f & IFF_MULTI_QUEUE != 0 => format!(
                "{name} already exists with multi_queue; open it with queues of 2 or more, or \
                 delete it"
            ),
            Some(_) => format!("the kernel refused to attach to the existing device {name}"),
        },
        (Errno::EINVAL, Some(_)) => format!(
            "{name} exists but is not a {kind} device with matching flags (maybe it was created \
             {} multi_queue); delete it or pick another name",
            if want_mq { "without" } else { "with" }
        ),
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
