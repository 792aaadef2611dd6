//! The kernel's uevents (`NETLINK_KOBJECT_UEVENT`), for one thing: the
//! character device number of a macvtap vmtap has just created.
//!
//! A macvtap's character device (`/dev/tap<ifindex>`) gets a minor number
//! from a counter shared by every network namespace; rtnetlink does not
//! report it, and sysfs (`/sys/class/net/<name>/macvtap/tap<ifindex>/dev`)
//! shows the namespace of whoever mounted it, not the caller's. The kernel
//! announces the device with an `add` uevent carrying `MAJOR`, `MINOR` and
//! `DEVNAME` while it creates the link, before rtnetlink acknowledges the
//! request, and it sends a macvtap's uevents only to the uevent sockets of
//! the link's own network namespace (the macvtap class is namespace-tagged).
//! So a uevent socket opened in the namespace before the request holds the
//! answer once the request is acknowledged: no sysfs, no mount namespace,
//! and nothing to wait for.
//!
//! Every socket and receive goes through [`Sys`] (`uevent_socket`,
//! `uevent_recv`).

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::sys::{DevT, Sys};

/// Receive buffer: the kernel's uevents are at most 2 KiB of variables
/// (`UEVENT_BUFFER_SIZE`) plus the `action@devpath` header.
const BUF: usize = 8 * 1024;

/// The `add` uevent of a macvtap's character device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MacvtapDevice {
    /// The link's name when the device was added.
    pub ifname: String,
    /// The link's ifindex (the device is `tap<ifindex>`).
    pub ifindex: u32,
    /// Its major and minor number.
    pub dev: DevT,
}

/// Read a kernel uevent: `ACTION@DEVPATH\0KEY=VALUE\0...`. Returns the
/// macvtap device it adds, if that is what it is: `ACTION=add`,
/// `SUBSYSTEM=macvtap`, `MAJOR`, `MINOR`, and a `DEVPATH` ending in
/// `/<ifname>/macvtap/tap<ifindex>`.
pub fn parse_macvtap_add(msg: &[u8]) -> Option<MacvtapDevice> {
    let mut fields = msg.split(|&b| b == 0);
    let header = fields.next()?;
    if !header.starts_with(b"add@") {
        return None;
    }
    let (mut action, mut subsystem, mut devpath, mut major, mut minor) =
        (None, None, None, None, None);
    for f in fields {
        let Some(eq) = f.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (k, v) = (&f[..eq], std::str::from_utf8(&f[eq + 1..]).ok());
        match k {
            b"ACTION" => action = v,
            b"SUBSYSTEM" => subsystem = v,
            b"DEVPATH" => devpath = v,
            b"MAJOR" => major = v.and_then(|v| v.parse::<u32>().ok()),
            b"MINOR" => minor = v.and_then(|v| v.parse::<u32>().ok()),
            _ => {}
        }
    }
    if action != Some("add") || subsystem != Some("macvtap") {
        return None;
    }
    let mut parts = devpath?.rsplit('/');
    let tap = parts.next()?;
    if parts.next()? != "macvtap" {
        return None;
    }
    let ifname = parts.next()?;
    let digits = tap.strip_prefix("tap")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(MacvtapDevice {
        ifname: ifname.to_owned(),
        ifindex: digits.parse().ok()?,
        dev: DevT {
            major: major?,
            minor: minor?,
        },
    })
}

/// A uevent socket in the calling thread's network namespace.
pub struct Uevents<'s> {
    sys: &'s dyn Sys,
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Uevents<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uevents").field("fd", &self.fd).finish()
    }
}

impl<'s> Uevents<'s> {
    /// Start listening: only uevents sent from now on are received.
    pub fn open(sys: &'s dyn Sys) -> Result<Self> {
        let fd = sys.uevent_socket().map_err(|e| {
            let err = Error::os(e, "socket");
            match e {
                Errno::EPROTONOSUPPORT | Errno::EAFNOSUPPORT => err.with_hint(
                    "this kernel has no uevent netlink socket (NETLINK_KOBJECT_UEVENT), which \
                     vmtap needs to find a macvtap's character device",
                ),
                _ => err.with_hint(
                    "could not create a uevent socket (AF_NETLINK, NETLINK_KOBJECT_UEVENT)",
                ),
            }
        })?;
        Ok(Uevents {
            sys,
            fd,
            buf: vec![0; BUF],
        })
    }

    /// Every macvtap `add` uevent queued so far, in order; the other
    /// uevents are read and dropped.
    pub fn macvtaps_added(&mut self) -> Result<Vec<MacvtapDevice>> {
        let mut out = Vec::new();
        while let Some(n) = self
            .sys
            .uevent_recv(self.fd.as_fd(), &mut self.buf)
            .map_err(|e| {
                let err = Error::os(e, "recv(uevent)");
                match e {
                    Errno::ENOBUFS => err.with_hint(
                        "the uevent socket overflowed (the namespace announced many devices at \
                         once) and the new macvtap's event may be lost; try again",
                    ),
                    _ => err,
                }
            })?
        {
            out.extend(parse_macvtap_add(&self.buf[..n.min(self.buf.len())]));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(header: &str, vars: &[&str]) -> Vec<u8> {
        let mut m = header.as_bytes().to_vec();
        for v in vars {
            m.push(0);
            m.extend_from_slice(v.as_bytes());
        }
        m.push(0);
        m
    }

    #[test]
    fn reads_the_macvtap_add_event() {
        // As the kernel sent it here (6.18), for `ip link add link vb0 name m0 type macvtap`.
        let m = msg(
            "add@/devices/virtual/net/m0/macvtap/tap4",
            &[
                "ACTION=add",
                "DEVPATH=/devices/virtual/net/m0/macvtap/tap4",
                "SUBSYSTEM=macvtap",
                "MAJOR=246",
                "MINOR=2",
                "DEVNAME=tap4",
                "SEQNUM=5123",
            ],
        );
        assert_eq!(
            parse_macvtap_add(&m),
            Some(MacvtapDevice {
                ifname: "m0".into(),
                ifindex: 4,
                dev: DevT {
                    major: 246,
                    minor: 2
                },
            })
        );
    }

    #[test]
    fn ignores_everything_else() {
        let net = msg(
            "add@/devices/virtual/net/m0",
            &[
                "ACTION=add",
                "DEVPATH=/devices/virtual/net/m0",
                "SUBSYSTEM=net",
            ],
        );
        let remove = msg(
            "remove@/devices/virtual/net/m0/macvtap/tap4",
            &[
                "ACTION=remove",
                "DEVPATH=/devices/virtual/net/m0/macvtap/tap4",
                "SUBSYSTEM=macvtap",
                "MAJOR=246",
                "MINOR=2",
            ],
        );
        let no_minor = msg(
            "add@/devices/virtual/net/m0/macvtap/tap4",
            &[
                "ACTION=add",
                "DEVPATH=/devices/virtual/net/m0/macvtap/tap4",
                "SUBSYSTEM=macvtap",
                "MAJOR=246",
            ],
        );
        let odd_path = msg(
            "add@/devices/virtual/net/m0/macvtap/tapx",
            &[
                "ACTION=add",
                "DEVPATH=/devices/virtual/net/m0/macvtap/tapx",
                "SUBSYSTEM=macvtap",
                "MAJOR=246",
                "MINOR=2",
            ],
        );
        let libudev = b"libudev\0\xfe\xed\xca\xfe".to_vec();
        for m in [net, remove, no_minor, odd_path, libudev, Vec::new()] {
            assert_eq!(
                parse_macvtap_add(&m),
                None,
                "{:?}",
                String::from_utf8_lossy(&m)
            );
        }
    }
}
