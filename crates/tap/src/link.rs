//! Interface configuration with the classic SIOC* ioctls on a control
//! socket, by interface name, in the caller's network namespace: link
//! up/down, MTU, MAC, bridge ports. What Ganeti's `kvm-nic-setup` and
//! libvirt's `virNetDevTapCreateInBridgePort` do, without `ip` or `brctl`.
//! [`get_link_info`] reads the link with one `RTM_GETLINK` instead (the
//! carrier does not fit SIOCGIFFLAGS).

use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use crate::diagnose::{self, ioctl_error};
use crate::error::{Error, Result};
use crate::netlink::{LinkRef, Netlink};
use crate::rules;
use crate::sys::{IfReq, Ioctl, Sys};

/// `IFF_UP` from `<linux/if.h>`.
pub const IFF_UP: u16 = 0x1;
/// `ARPHRD_ETHER`.
const ARPHRD_ETHER: u16 = 1;

/// A control socket for the SIOC* ioctls on the interface `name`.
fn socket(sys: &dyn Sys, name: &str) -> Result<OwnedFd> {
    sys.control_socket().map_err(|e| {
        Error::os(e, "socket")
            .with_ifname(name)
            .with_hint("could not create a control socket")
    })
}

fn run(sys: &dyn Sys, sock: &OwnedFd, op: &mut Ioctl<'_>, name: &str) -> Result<()> {
    diagnose::ioctl(sys, sock.as_fd(), op, name)
}

/// The interface's flags (`IFF_UP`, ...).
pub fn flags(sys: &dyn Sys, name: &str) -> Result<u16> {
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    run(sys, &sock, &mut Ioctl::GetIfFlags(&mut req), name)?;
    Ok(req.flags())
}

/// What the kernel reports about a link, from one `RTM_GETLINK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The interface's name now.
    pub ifname: String,
    /// The low 16 bits of the link's flags (`IFF_UP`...), as SIOCGIFFLAGS has them.
    pub flags: u16,
    pub mtu: u32,
    pub mac: [u8; 6],
    pub ifindex: i32,
    /// `IFLA_CARRIER`: whether the link has a carrier (a TAP device has one
    /// while a queue is attached, unless TUNSETCARRIER turned it off).
    pub carrier: bool,
    /// `IFLA_TXQLEN`: the transmit queue length.
    pub tx_queue_len: u32,
}

/// Flags, MTU, MAC, ifindex, carrier and transmit queue length of `name`,
/// in one `RTM_GETLINK` (SIOCGIFFLAGS cannot show the carrier:
/// `IFF_LOWER_UP` does not fit its 16 bits).
pub fn get_link_info(sys: &dyn Sys, name: &str) -> Result<LinkInfo> {
    let link = Netlink::open(sys)?
        .link(LinkRef::Name(name))
        .map_err(|e| e.with_ifname(name))?
        .ok_or_else(|| {
            Error::os(Errno::ENODEV, "netlink(RTM_GETLINK)")
                .with_ifname(name)
                .with_hint(format!(
                    "there is no interface {name} in this network namespace"
                ))
        })?;
    Ok(LinkInfo {
        flags: link.flags as u16,
        mtu: link.mtu.unwrap_or(0),
        mac: link.mac.unwrap_or([0; 6]),
        ifindex: link.ifindex as i32,
        carrier: link
            .carrier
            .unwrap_or(link.flags & crate::netlink::IFF_LOWER_UP != 0),
        tx_queue_len: link.txqlen.unwrap_or(0),
        ifname: link.ifname,
    })
}

/// The MAC in an ifreq filled by SIOCGIFHWADDR.
pub(crate) fn hwaddr(req: &IfReq) -> [u8; 6] {
    // SAFETY: SIOCGIFHWADDR filled the sockaddr member; every bit pattern
    // of its bytes is valid.
    let data = unsafe { req.data.hwaddr.sa_data };
    let mut out = [0u8; 6];
    for (o, d) in out.iter_mut().zip(data.iter()) {
        *o = *d as u8;
    }
    out
}

/// Bring the link up or down (SIOCGIFFLAGS, then SIOCSIFFLAGS).
pub fn set_link_up(sys: &dyn Sys, name: &str, up: bool) -> Result<()> {
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    run(sys, &sock, &mut Ioctl::GetIfFlags(&mut req), name)?;
    let old = req.flags();
    let new = if up { old | IFF_UP } else { old & !IFF_UP };
    if new == old {
        return Ok(());
    }
    let mut req = IfReq::with_name_flags(name, new);
    run(sys, &sock, &mut Ioctl::SetIfFlags(&mut req), name)
}

/// The MTU (SIOCGIFMTU).
pub fn mtu(sys: &dyn Sys, name: &str) -> Result<u32> {
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    run(sys, &sock, &mut Ioctl::GetIfMtu(&mut req), name)?;
    Ok(req.ivalue() as u32)
}

/// Set the MTU (SIOCSIFMTU). `mtu` must pass [`rules::check_mtu`]; the
/// device may allow less (a TAP device: [`rules::TAP_MAX_MTU`]).
pub fn set_mtu(sys: &dyn Sys, name: &str, mtu: u32) -> Result<()> {
    rules::check_mtu(mtu)?;
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    req.data.ivalue = mtu as libc::c_int;
    run(sys, &sock, &mut Ioctl::SetIfMtu(&mut req), name).map_err(|e| match e.errno() {
        Some(Errno::EINVAL) => e.with_hint(format!(
            "{name} does not take MTU {mtu}: it is above the device's maximum ({} for a TAP device)",
            rules::TAP_MAX_MTU
        )),
        _ => e,
    })
}

/// The MAC address (SIOCGIFHWADDR).
pub fn mac(sys: &dyn Sys, name: &str) -> Result<[u8; 6]> {
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    run(sys, &sock, &mut Ioctl::GetIfHwAddr(&mut req), name)?;
    Ok(hwaddr(&req))
}

/// Set the MAC address (SIOCSIFHWADDR, ARPHRD_ETHER).
pub fn set_mac(sys: &dyn Sys, name: &str, mac: &[u8; 6]) -> Result<()> {
    rules::check_unicast(mac)?;
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    // SAFETY: writing plain data into the sockaddr member of the union.
    unsafe {
        req.data.hwaddr.sa_family = ARPHRD_ETHER;
        for (d, m) in req.data.hwaddr.sa_data.iter_mut().zip(mac.iter()) {
            *d = *m as libc::c_char;
        }
    }
    run(sys, &sock, &mut Ioctl::SetIfHwAddr(&mut req), name)
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parse `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The host-side MAC for a guest MAC, as libvirt and Ganeti derive it: the
/// same address with the first octet 0xFE (0xFA if it already is 0xFE), so
/// the bridge never takes the guest's address as its own and the two differ.
pub fn host_mac_for(guest: &[u8; 6]) -> [u8; 6] {
    let mut m = *guest;
    m[0] = if guest[0] == 0xfe { 0xfa } else { 0xfe };
    m
}

/// The ifindex of `name` (SIOCGIFINDEX).
pub fn ifindex(sys: &dyn Sys, name: &str) -> Result<i32> {
    let sock = socket(sys, name)?;
    let mut req = IfReq::with_name(name);
    run(sys, &sock, &mut Ioctl::GetIfIndex(&mut req), name)?;
    Ok(req.ivalue())
}

/// The ifindex of `name`, or `None` when there is no such interface.
pub fn lookup(sys: &dyn Sys, name: &str) -> Result<Option<i32>> {
    match ifindex(sys, name) {
        Ok(i) => Ok(Some(i)),
        Err(e) if e.errno() == Some(Errno::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn bridge_op(sys: &dyn Sys, bridge: &str, port: &str, add: bool) -> Result<()> {
    rules::check_bridge_name(bridge)?;
    let index = ifindex(sys, port)?;
    let sock = socket(sys, port)?;
    let mut req = IfReq::with_name(bridge);
    req.data.ivalue = index;
    let mut op = if add {
        Ioctl::BridgeAddIf(&mut req)
    } else {
        Ioctl::BridgeDelIf(&mut req)
    };
    let label = op.name();
    sys.ioctl(sock.as_fd(), &mut op).map_err(|errno| {
        let err = ioctl_error(errno, label, Some(port));
        let hint = match (errno, add) {
            (Errno::ENODEV, _) => format!("there is no bridge {bridge} in this network namespace"),
            (Errno::EOPNOTSUPP, _) => format!("{bridge} is not a bridge"),
            (Errno::EBUSY, true) => {
                format!("{port} is already a port of a bridge (or another master); detach it first")
            }
            (Errno::EINVAL, false) => format!("{port} is not a port of {bridge}"),
            (Errno::ELOOP, true) => format!("adding {port} to {bridge} would make a loop"),
            (Errno::EPERM, _) => "changing a bridge needs CAP_NET_ADMIN".to_owned(),
            _ => return err,
        };
        err.with_hint(hint)
    })
}

/// Make `port` a port of the Linux bridge `bridge` (SIOCBRADDIF by ifindex).
pub fn attach_to_bridge(sys: &dyn Sys, bridge: &str, port: &str) -> Result<()> {
    bridge_op(sys, bridge, port, true)
}

/// Remove `port` from `bridge` (SIOCBRDELIF).
pub fn detach_from_bridge(sys: &dyn Sys, bridge: &str, port: &str) -> Result<()> {
    bridge_op(sys, bridge, port, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_mac_follows_libvirt() {
        assert_eq!(
            host_mac_for(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]),
            [0xfe, 0x54, 0, 0x12, 0x34, 0x56]
        );
        assert_eq!(host_mac_for(&[0xfe, 1, 2, 3, 4, 5]), [0xfa, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn macs_parse_and_format() {
        let m = parse_mac("52:54:00:AB:cd:0f").unwrap();
        assert_eq!(m, [0x52, 0x54, 0, 0xab, 0xcd, 0x0f]);
        assert_eq!(format_mac(&m), "52:54:00:ab:cd:0f");
        for bad in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:0f:00",
            "5:54:00:ab:cd:0f",
            "zz:54:00:ab:cd:0f",
            "52-54-00-ab-cd-0f",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad}");
        }
        assert!(rules::check_unicast(&[1, 0, 0, 0, 0, 1]).is_err());
        assert!(rules::check_unicast(&[0; 6]).is_err());
        assert!(rules::check_unicast(&m).is_ok());
    }

    #[test]
    fn mtu_range_is_checked_before_any_syscall() {
        use crate::fault::NoSys;
        assert_eq!(
            set_mtu(&NoSys, "x", 67).unwrap_err().code(),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            set_mtu(&NoSys, "x", 65536).unwrap_err().code(),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            set_mac(&NoSys, "x", &[1, 2, 3, 4, 5, 6])
                .unwrap_err()
                .code(),
            "ERR_INVALID_ARG_VALUE"
        );
    }
}
