//! An open TAP device ([`Tap`]) and everything done to it: its TUN ioctls
//! (persist, owner, group, vnet header size, offloads, queues), its link
//! (up, MTU, MAC, bridge ports, through [`crate::link`]), and closing it,
//! alone or many at once.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, OnceLock};

use nix::errno::Errno;

use crate::diagnose::{self, ioctl_error};
use crate::error::{Error, Result};
use crate::link::{self, LinkInfo};
use crate::macvtap::{self, MacvtapLink};
use crate::netlink::{LinkRef, Netlink};
use crate::netns::{self, NetNs};
use crate::rules;
use crate::sys::consts::*;
use crate::sys::{IfReq, Ioctl, RealSys, Sys};
use crate::tun;

/// An open TAP device (or macvtap, see [`crate::macvtap`]): its name and the
/// fds that keep it alive. Dropping it closes every fd; a non-persistent
/// device disappears with its last fd (a non-persistent macvtap is deleted).
#[derive(Debug)]
pub struct Tap {
    pub(crate) ifname: String,
    pub(crate) tap_fds: Vec<OwnedFd>,
    pub(crate) vhost_fds: Vec<OwnedFd>,
    pub(crate) flags: u16,
    pub(crate) features: u32,
    /// The network namespace the device lives in, when it is not the
    /// caller's: its link operations run there.
    pub(crate) netns: Option<Arc<NetNs>>,
    /// Opened without the default owner: making it persistent later does
    /// not add one either.
    pub(crate) ownerless: bool,
    /// The ifindex, found on first use ([`Tap::ifindex`]).
    pub(crate) ifindex: OnceLock<u32>,
    /// The macvtap link, for a macvtap: closing (or dropping) the `Tap`
    /// deletes it unless it is persistent. After the fds, so dropping
    /// closes them first.
    pub(crate) macvtap: Option<MacvtapLink>,
}

impl Tap {
    /// The name the device had when it was opened (see [`Tap::current_name`]).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The network namespace the device lives in, or `None` for the caller's.
    pub fn netns(&self) -> Option<&NetNs> {
        self.netns.as_deref()
    }

    /// The device's name as the kernel has it now (TUNGETIFF on its first
    /// queue): a rename since the open is followed, and another interface
    /// that took the old name is never mistaken for this device.
    pub fn current_name(&self, sys: &dyn Sys) -> Result<String> {
        tun::get_iff(sys, self.control_fd())
            .map(|(name, _)| name)
            .map_err(|e| ioctl_error(e, "ioctl(TUNGETIFF)", Some(&self.ifname)))
    }

    /// Run `f` with the device's current name, in the device's namespace:
    /// every link operation goes through here.
    pub(crate) fn on_link<R: Send>(
        &self,
        sys: &dyn Sys,
        f: impl FnOnce(&str) -> Result<R> + Send,
    ) -> Result<R> {
        let name = self.current_name(sys)?;
        netns::run_in(sys, self.netns(), || f(&name))
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

    /// Close every fd (dropping does the same, silently), and delete a
    /// macvtap link unless it is persistent. Every fd is released even when
    /// one fails; the first failure is returned — EBADF means an fd was
    /// closed behind this `Tap`'s back. Returns how many fds were closed.
    pub fn close(self) -> Result<usize> {
        self.close_with(&RealSys)
    }

    /// [`Tap::close`], deleting a macvtap link through `sys`.
    pub fn close_with(self, sys: &dyn Sys) -> Result<usize> {
        let Tap {
            ifname,
            tap_fds,
            vhost_fds,
            macvtap,
            ..
        } = self;
        let mut first: Option<Errno> = None;
        let mut n = 0;
        for fd in tap_fds.into_iter().chain(vhost_fds) {
            let raw = fd.into_raw_fd();
            // SAFETY: we owned raw; it is closed exactly once, here. Linux
            // releases the fd even when close() reports an error (EINTR too).
            if unsafe { libc::close(raw) } != 0 {
                first.get_or_insert(Errno::last());
            }
            n += 1;
        }
        let deleted = match macvtap {
            Some(m) => m.release(sys, &ifname),
            None => Ok(()),
        };
        match first {
            None => deleted.map(|()| n),
            Some(e) => Err(Error::os(e, "close").with_ifname(ifname).with_hint(
                "an fd of this device was not open any more (closed elsewhere?); every other fd was released",
            )),
        }
    }

    /// One TUN ioctl on the control fd.
    fn tun_ioctl(&self, sys: &dyn Sys, mut op: Ioctl<'_>) -> Result<()> {
        diagnose::ioctl(sys, self.control_fd(), &mut op, &self.ifname)
    }

    /// TUNSETPERSIST: a persistent device outlives its fds (delete it with
    /// `set_persist(false)` and closing, or [`crate::delete_tap`]). Making a
    /// device persistent applies the ownership rule of [`crate::open_tap`]:
    /// a device with neither owner nor group gets the caller's euid as its
    /// owner first (unless it was opened `ownerless`), so no persistent
    /// device vmtap makes can be attached to by any local user.
    ///
    /// A macvtap has no persistence flag: for one, this only chooses
    /// whether closing (or dropping) this `Tap` deletes the link.
    pub fn set_persist(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.persist_by_rule(sys, on, false)
    }

    /// [`Tap::set_persist`] from a thread that is in the device's namespace
    /// already (open's `configure`): the owner check looks the device up
    /// there, without a thread of its own entering the namespace again.
    pub(crate) fn set_persist_in_ns(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.persist_by_rule(sys, on, true)
    }

    /// [`Tap::set_persist`]; `in_ns`: the calling thread is in the device's
    /// namespace.
    fn persist_by_rule(&self, sys: &dyn Sys, on: bool, in_ns: bool) -> Result<()> {
        if let Some(m) = &self.macvtap {
            m.set_persistent(on);
            return Ok(());
        }
        if on && !self.ownerless {
            let look_up = |name: &str| {
                let mut nl = Netlink::open(sys)?;
                nl.link(LinkRef::Name(name))
            };
            let info = if in_ns {
                look_up(&self.current_name(sys)?)?
            } else {
                self.on_link(sys, look_up)?
            };
            let unowned = info
                .and_then(|l| l.tun)
                .is_some_and(|t| t.owner.is_none() && t.group.is_none());
            if unowned {
                self.set_owner(sys, crate::open::euid())?;
            }
        }
        self.persist_ioctl(sys, on)
    }

    /// TUNSETPERSIST alone, for callers that settled ownership themselves.
    pub(crate) fn persist_ioctl(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.tun_ioctl(sys, Ioctl::TunSetPersist(on))
    }

    /// TUNSETOWNER: `uid` may attach to the device without CAP_NET_ADMIN.
    /// A macvtap has no owner (refused: ERR_INVALID_ARG_VALUE).
    pub fn set_owner(&self, sys: &dyn Sys, uid: u32) -> Result<()> {
        rules::check_id("uid", uid)?;
        macvtap::refuse_ownership("uid", self)?;
        self.tun_ioctl(sys, Ioctl::TunSetOwner(uid))
    }

    /// TUNSETGROUP: members of `gid` may attach without CAP_NET_ADMIN.
    /// A macvtap has no group (refused: ERR_INVALID_ARG_VALUE).
    pub fn set_group(&self, sys: &dyn Sys, gid: u32) -> Result<()> {
        rules::check_id("gid", gid)?;
        macvtap::refuse_ownership("gid", self)?;
        self.tun_ioctl(sys, Ioctl::TunSetGroup(gid))
    }

    /// TUNGETVNETHDRSZ.
    pub fn get_vnet_hdr_size(&self, sys: &dyn Sys) -> Result<i32> {
        let mut v = 0;
        self.tun_ioctl(sys, Ioctl::TunGetVnetHdrSz(&mut v))?;
        Ok(v)
    }

    /// TUNSETVNETHDRSZ: 10, 12 or 20, on a device with vnet_hdr. The size is
    /// per device and persists across users of a persistent device (QEMU
    /// resets it for that reason).
    pub fn set_vnet_hdr_size(&self, sys: &dyn Sys, size: i32) -> Result<()> {
        rules::check_vnet_hdr_size(size)?;
        rules::check_device_vnet_hdr("vnetHdrSize", self.vnet_hdr(), &self.ifname)?;
        self.tun_ioctl(sys, Ioctl::TunSetVnetHdrSz(size))
    }

    /// TUNSETOFFLOAD with QEMU's probe-and-fallback: if the kernel refuses
    /// the set, retry without USO, then without UFO. Returns the bits that
    /// were applied. `0` turns every offload off.
    pub fn set_offloads(&self, sys: &dyn Sys, wanted: u32) -> Result<u32> {
        rules::check_offloads(wanted)?;
        if wanted != 0 {
            rules::check_device_vnet_hdr("offloads", self.vnet_hdr(), &self.ifname)?;
        }
        let mut bits = wanted;
        loop {
            match sys.ioctl(self.control_fd(), &mut Ioctl::TunSetOffload(bits)) {
                Ok(()) => return Ok(bits),
                Err(Errno::EINVAL) if bits & (TUN_F_USO4 | TUN_F_USO6) != 0 => {
                    bits &= !(TUN_F_USO4 | TUN_F_USO6)
                }
                Err(Errno::EINVAL) if bits & TUN_F_UFO != 0 => bits &= !TUN_F_UFO,
                Err(e) => {
                    return Err(ioctl_error(e, "ioctl(TUNSETOFFLOAD)", Some(&self.ifname))
                        .or_hint(format!("the kernel refused offloads {bits:#x}")))
                }
            }
        }
    }

    /// Enable or disable queue `index` (TUNSETQUEUE with IFF_ATTACH_QUEUE /
    /// IFF_DETACH_QUEUE), as QEMU does when the guest changes its number of
    /// queue pairs. Multi-queue devices only.
    pub fn set_queue_enabled(&self, sys: &dyn Sys, index: usize, enabled: bool) -> Result<()> {
        rules::check_queue_index(index, self.tap_fds.len(), self.multi_queue())?;
        let fd = &self.tap_fds[index];
        let flags = if enabled {
            IFF_ATTACH_QUEUE
        } else {
            IFF_DETACH_QUEUE
        };
        let mut req = IfReq::with_name_flags("", flags);
        sys.ioctl(fd.as_fd(), &mut Ioctl::TunSetQueue(&mut req))
            .map_err(|e| {
                let err = ioctl_error(e, "ioctl(TUNSETQUEUE)", Some(&self.ifname));
                match e {
                    Errno::EINVAL => err.with_hint(format!(
                        "queue {index} is already {}",
                        if enabled { "enabled" } else { "disabled" }
                    )),
                    Errno::E2BIG => err.with_hint("the device already has 256 queues enabled"),
                    _ => err,
                }
            })
    }

    /// Bring the link up or down (SIOCGIFFLAGS, then SIOCSIFFLAGS).
    pub fn set_link_up(&self, sys: &dyn Sys, up: bool) -> Result<()> {
        self.on_link(sys, |name| link::set_link_up(sys, name, up))
    }

    /// TUNSETCARRIER: turn the link's carrier on or off (the kernel turns it
    /// on when a queue attaches and off when the last one detaches). With
    /// the carrier off the link is up but not running (`NO-CARRIER`): the
    /// host stops sending to it, as when a cable is pulled.
    pub fn set_carrier(&self, sys: &dyn Sys, on: bool) -> Result<()> {
        self.tun_ioctl(sys, Ioctl::TunSetCarrier(i32::from(on)))
    }

    /// Name, flags, MTU, MAC, ifindex, carrier and transmit queue length of
    /// the link, as they are now (one `RTM_GETLINK`).
    pub fn get_link_info(&self, sys: &dyn Sys) -> Result<LinkInfo> {
        self.on_link(sys, |name| link::get_link_info(sys, name))
    }

    /// SIOCSIFMTU: 68 to 65535 (a TAP device itself takes at most 65521).
    pub fn set_mtu(&self, sys: &dyn Sys, mtu: u32) -> Result<()> {
        rules::check_mtu(mtu)?;
        self.on_link(sys, |name| link::set_mtu(sys, name, mtu))
    }

    /// SIOCSIFHWADDR: a unicast MAC, not all zeros.
    pub fn set_mac(&self, sys: &dyn Sys, mac: &[u8; 6]) -> Result<()> {
        rules::check_unicast(mac)?;
        self.on_link(sys, |name| link::set_mac(sys, name, mac))
    }

    /// Make the device a port of the Linux bridge `bridge` (SIOCBRADDIF), a
    /// bridge in the device's namespace.
    pub fn attach_to_bridge(&self, sys: &dyn Sys, bridge: &str) -> Result<()> {
        rules::check_bridge_name(bridge)?;
        self.on_link(sys, |name| link::attach_to_bridge(sys, bridge, name))
    }

    /// Remove the device from `bridge` (SIOCBRDELIF).
    pub fn detach_from_bridge(&self, sys: &dyn Sys, bridge: &str) -> Result<()> {
        rules::check_bridge_name(bridge)?;
        self.on_link(sys, |name| link::detach_from_bridge(sys, bridge, name))
    }
}

/// Close many devices in parallel (the kernel's teardown of a device,
/// ~16 ms of RCU grace periods, overlaps well across threads). Uses up to
/// `max_threads` threads; returns, per input, the result of [`Tap::close`],
/// in input order.
pub fn close_all(taps: Vec<Tap>, max_threads: usize) -> Vec<Result<usize>> {
    let n = taps.len();
    if n <= 1 || max_threads <= 1 {
        return taps.into_iter().map(Tap::close).collect();
    }
    let work: Mutex<Vec<(usize, Tap)>> = Mutex::new(taps.into_iter().enumerate().rev().collect());
    let results: Mutex<Vec<Option<Result<usize>>>> = Mutex::new((0..n).map(|_| None).collect());
    let worker = || loop {
        let next = work.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let Some((i, tap)) = next else { break };
        let r = tap.close();
        results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(r);
    };
    std::thread::scope(|s| {
        // The calling thread works too, so a failed spawn (thread limits)
        // only costs parallelism, never completion.
        for _ in 1..max_threads.min(n) {
            let spawned = std::thread::Builder::new()
                .name("vmtap-close".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, worker);
            if spawned.is_err() {
                break;
            }
        }
        worker();
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or(Ok(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    /// A Tap over /dev/null fds: only for checks that must not reach the kernel.
    fn fake_tap(queues: usize, flags: u16) -> Tap {
        let fd = || OwnedFd::from(std::fs::File::open("/dev/null").unwrap());
        Tap {
            ifname: "fake0".into(),
            tap_fds: (0..queues).map(|_| fd()).collect(),
            vhost_fds: Vec::new(),
            flags,
            features: 0,
            netns: None,
            ownerless: false,
            ifindex: OnceLock::new(),
            macvtap: None,
        }
    }

    fn refused(r: Result<impl std::fmt::Debug>) -> &'static str {
        match r {
            Err(Error::InvalidArgument { range: true, .. }) => "ERR_OUT_OF_RANGE",
            Err(Error::InvalidArgument { .. }) => "ERR_INVALID_ARG_VALUE",
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn setters_refuse_before_any_syscall() {
        const VAL: &str = "ERR_INVALID_ARG_VALUE";
        const RANGE: &str = "ERR_OUT_OF_RANGE";
        let vnet = fake_tap(2, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE);
        let plain = fake_tap(1, IFF_TAP | IFF_NO_PI);
        let ecn = TUN_F_CSUM | TUN_F_TSO_ECN;
        assert_eq!(refused(vnet.set_offloads(&NoSys, ecn)), VAL, "ecn alone");
        assert_eq!(
            refused(vnet.set_offloads(&NoSys, TUN_F_CSUM | TUN_F_USO4)),
            VAL,
            "uso4 without uso6"
        );
        assert_eq!(refused(vnet.set_offloads(&NoSys, TUN_F_TSO4)), VAL);
        assert_eq!(refused(vnet.set_offloads(&NoSys, 0x80)), RANGE);
        assert_eq!(
            refused(plain.set_offloads(&NoSys, TUN_F_CSUM)),
            VAL,
            "offloads without vnet_hdr"
        );
        assert_eq!(refused(vnet.set_vnet_hdr_size(&NoSys, 11)), RANGE);
        assert_eq!(
            refused(plain.set_vnet_hdr_size(&NoSys, 12)),
            VAL,
            "vnetHdrSize without vnet_hdr"
        );
        assert_eq!(refused(vnet.set_owner(&NoSys, u32::MAX)), RANGE);
        assert_eq!(refused(vnet.set_group(&NoSys, u32::MAX)), RANGE);
        assert_eq!(refused(vnet.set_queue_enabled(&NoSys, 2, true)), RANGE);
        assert_eq!(refused(plain.set_queue_enabled(&NoSys, 0, true)), VAL);
        assert_eq!(refused(vnet.set_mtu(&NoSys, 70000)), RANGE);
        assert_eq!(refused(vnet.set_mtu(&NoSys, 67)), RANGE);
        assert_eq!(refused(vnet.set_mac(&NoSys, &[1, 2, 3, 4, 5, 6])), VAL);
        assert_eq!(refused(vnet.attach_to_bridge(&NoSys, "br%d")), VAL);
        assert_eq!(refused(vnet.detach_from_bridge(&NoSys, "")), VAL);
    }
}
