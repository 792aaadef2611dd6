//! The TUN/TAP devices of a network namespace, from one netlink dump, and
//! vmtap's tags on them.
//!
//! **Tags.** A tag is a short label ([`rules::check_tag`]: 1 to 64 bytes of
//! ASCII letters, digits and `. _ - : @ /`) that marks a device as belonging
//! to whoever set it, so that leftovers can be found and collected later
//! ([`crate::gc`]). It is stored in the interface alias (`IFLA_IFALIAS`,
//! what `ip link set DEV alias TEXT` sets) as [`TAG_PREFIX`] followed by the
//! tag: `vmtap:tag=ci-42`. An alias in any other form (an administrator's
//! description, or a malformed vmtap one) is no tag: such a device is
//! untagged, and never collected.
//!
//! **Queues.** The kernel reports attached and disabled queues
//! (`IFLA_TUN_NUM_QUEUES`, `IFLA_TUN_NUM_DISABLED_QUEUES`) for multi-queue
//! devices only. A single-queue device has one queue when an fd is attached
//! and none otherwise, and the kernel turns its carrier on at the attach and
//! off at the detach: [`TapInfo::queues`] is read from `IFLA_CARRIER` there
//! (`ip link set DEV carrier on|off` can fool it).

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use nix::errno::Errno;

use crate::device::Tap;
use crate::diagnose::ioctl_error;
use crate::error::{Error, Result};
use crate::link;
use crate::netlink::{Link, LinkChange, LinkFilter, LinkRef, LinkStats, Netlink};
use crate::netns::{self, NetNs, NetNsSpec};
use crate::rules;
use crate::sys::Sys;
use crate::tun;

/// What comes before the tag in the interface alias.
pub const TAG_PREFIX: &str = "vmtap:tag=";

/// The alias that carries `tag`.
pub fn encode_tag(tag: &str) -> Result<String> {
    rules::check_tag(tag)?;
    Ok(format!("{TAG_PREFIX}{tag}"))
}

/// The tag in an alias, when it is one of vmtap's (and a valid tag).
pub fn decode_tag(alias: &str) -> Option<&str> {
    alias
        .strip_prefix(TAG_PREFIX)
        .filter(|t| rules::check_tag(t).is_ok())
}

/// One TUN/TAP device, as one netlink dump reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapInfo {
    pub ifname: String,
    pub ifindex: u32,
    /// A TAP device (`IFF_TAP`); else TUN.
    pub tap: bool,
    /// Packet information header (`IFF_NO_PI` unset).
    pub pi: bool,
    pub vnet_hdr: bool,
    pub multi_queue: bool,
    pub persist: bool,
    /// TUNSETOWNER, when set.
    pub owner: Option<u32>,
    /// TUNSETGROUP, when set.
    pub group: Option<u32>,
    /// Attached (enabled) queues; see the module docs for single-queue devices.
    pub queues: u32,
    /// Queues attached but disabled (TUNSETQUEUE), multi-queue devices only.
    pub disabled_queues: u32,
    pub mtu: u32,
    /// `None` for a TUN device (it has no link-layer address).
    pub mac: Option<[u8; 6]>,
    pub up: bool,
    /// The name of the bridge (or other master) this device is a port of.
    pub master: Option<String>,
    /// The vmtap tag in the alias, if any.
    pub tag: Option<String>,
}

impl TapInfo {
    /// Whether some process has a queue attached (enabled or disabled).
    pub fn held(&self) -> bool {
        self.queues + self.disabled_queues > 0
    }

    /// A `tun` link as a `TapInfo` (the master's name left out).
    fn from_link(l: &Link) -> TapInfo {
        // Kernels before 4.15 send no IFLA_INFO_DATA: only the link type tells.
        let t = l.tun.unwrap_or_default();
        let tap = if l.tun.is_some() {
            t.tap
        } else {
            l.link_type == 1
        };
        let (queues, disabled_queues) = if t.multi_queue {
            (
                t.num_queues.unwrap_or(0),
                t.num_disabled_queues.unwrap_or(0),
            )
        } else {
            (u32::from(l.carrier == Some(true)), 0)
        };
        TapInfo {
            ifname: l.ifname.clone(),
            ifindex: l.ifindex,
            tap,
            pi: t.pi,
            vnet_hdr: t.vnet_hdr,
            multi_queue: t.multi_queue,
            persist: t.persist,
            owner: t.owner,
            group: t.group,
            queues,
            disabled_queues,
            mtu: l.mtu.unwrap_or(0),
            mac: l.mac,
            up: l.is_up(),
            master: None,
            tag: l.alias.as_deref().and_then(decode_tag).map(str::to_owned),
        }
    }
}

/// Every TUN/TAP device of the calling thread's network namespace: one
/// dump of the links of kind `tun`, and one get per distinct bridge they
/// are ports of (for its name). In ifindex order.
pub fn list_taps(sys: &dyn Sys, netns: Option<&NetNsSpec>) -> Result<Vec<TapInfo>> {
    let ns = NetNs::open_opt(sys, netns)?;
    netns::run_in(sys, ns.as_ref(), || list_with(&mut Netlink::open(sys)?))
}

/// [`list_taps`] on an open socket.
pub(crate) fn list_with(nl: &mut Netlink<'_>) -> Result<Vec<TapInfo>> {
    let filter = LinkFilter {
        kind: Some("tun".into()),
        ..LinkFilter::default()
    };
    let links = nl.links(&filter)?;
    let mut masters: BTreeMap<u32, Option<String>> = BTreeMap::new();
    for m in links.iter().filter_map(|l| l.master) {
        if let std::collections::btree_map::Entry::Vacant(e) = masters.entry(m) {
            // A bridge deleted since the dump has released its ports: None.
            e.insert(nl.link(LinkRef::Index(m))?.map(|b| b.ifname));
        }
    }
    Ok(links
        .iter()
        .map(|l| TapInfo {
            master: l.master.and_then(|m| masters.get(&m).cloned().flatten()),
            ..TapInfo::from_link(l)
        })
        .collect())
}

impl Tap {
    /// The device's ifindex: looked up once, by the name the kernel gives
    /// for an attached fd (TUNGETIFF, so a rename since the open does not
    /// matter; a disabled queue's fd is skipped), then remembered.
    pub fn ifindex(&self, sys: &dyn Sys) -> Result<u32> {
        if let Some(&i) = self.ifindex.get() {
            return Ok(i);
        }
        for fd in &self.tap_fds {
            match tun::get_iff(sys, fd.as_fd()) {
                Ok((name, _)) => {
                    let i = netns::run_in(sys, self.netns(), || link::ifindex(sys, &name))? as u32;
                    return Ok(*self.ifindex.get_or_init(|| i));
                }
                // A disabled queue's fd is detached: try the next one.
                Err(Errno::EBADFD) => {}
                Err(e) => return Err(ioctl_error(e, "ioctl(TUNGETIFF)", Some(&self.ifname))),
            }
        }
        Err(ioctl_error(
            Errno::EBADFD,
            "ioctl(TUNGETIFF)",
            Some(&self.ifname),
        ))
    }

    /// The device's counters (`IFLA_STATS64`, one netlink get in the
    /// device's namespace).
    pub fn get_stats(&self, sys: &dyn Sys) -> Result<LinkStats> {
        let ifindex = self.ifindex(sys)?;
        let link = netns::run_in(sys, self.netns(), || {
            Netlink::open(sys)?.link(LinkRef::Index(ifindex))
        })
        .map_err(|e| e.with_ifname(self.ifname.as_str()))?;
        link.and_then(|l| l.stats).ok_or_else(|| {
            Error::os(Errno::ENODEV, "netlink(RTM_GETLINK)")
                .with_ifname(self.ifname.as_str())
                .with_hint(format!(
                    "{} is not in this network namespace any more",
                    self.ifname
                ))
        })
    }

    /// Store `tag` in the device's alias (`None`: clear the alias), in one
    /// `RTM_NEWLINK` in the device's namespace. The tag is checked first.
    pub fn set_tag(&self, sys: &dyn Sys, tag: Option<&str>) -> Result<()> {
        let alias = match tag {
            Some(t) => encode_tag(t)?,
            None => String::new(),
        };
        let ifindex = self.ifindex(sys)?;
        netns::run_in(sys, self.netns(), || {
            self.set_alias_here(sys, ifindex, alias)
        })
    }

    /// [`Tap::set_tag`]'s netlink request, on the current thread (already
    /// in the device's namespace: the open-time configuration).
    pub(crate) fn set_alias_here(&self, sys: &dyn Sys, ifindex: u32, alias: String) -> Result<()> {
        let change = LinkChange {
            alias: Some(alias),
            ..LinkChange::default()
        };
        Netlink::open(sys)?
            .set_link(ifindex, &change)
            .map_err(|e| e.with_ifname(self.ifname.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::TunInfo;

    #[test]
    fn tags_round_trip_and_foreign_aliases_are_no_tags() {
        assert_eq!(encode_tag("ci-42").unwrap(), "vmtap:tag=ci-42");
        assert_eq!(decode_tag("vmtap:tag=ci-42"), Some("ci-42"));
        assert_eq!(
            decode_tag(&encode_tag(&"t".repeat(64)).unwrap()),
            Some(&*"t".repeat(64))
        );
        for alias in [
            "",
            "uplink to the lab",
            "vmtap:tag=",
            "vmtap:tag=a b",
            "vmtap:tag=a;b",
            "VMTAP:tag=x",
            "vmtap:tags=x",
            " vmtap:tag=x",
        ] {
            assert_eq!(decode_tag(alias), None, "{alias:?}");
        }
        assert_eq!(encode_tag("").unwrap_err().code(), "ERR_INVALID_ARG_VALUE");
        assert_eq!(
            encode_tag("a=b").unwrap_err().code(),
            "ERR_INVALID_ARG_VALUE"
        );
        // The alias always fits IFALIASZ.
        assert!(TAG_PREFIX.len() + rules::MAX_TAG_BYTES < 256);
    }

    #[test]
    fn queues_of_single_queue_devices_come_from_the_carrier() {
        let link = |carrier, mq: Option<(u32, u32)>| Link {
            ifname: "t0".into(),
            ifindex: 7,
            link_type: 1,
            carrier,
            alias: Some("vmtap:tag=x".into()),
            tun: Some(TunInfo {
                tap: true,
                multi_queue: mq.is_some(),
                num_queues: mq.map(|m| m.0),
                num_disabled_queues: mq.map(|m| m.1),
                persist: true,
                ..TunInfo::default()
            }),
            ..Link::default()
        };
        let held = |l: Link| {
            let t = TapInfo::from_link(&l);
            (t.queues, t.disabled_queues, t.held())
        };
        assert_eq!(held(link(Some(true), None)), (1, 0, true));
        assert_eq!(held(link(Some(false), None)), (0, 0, false));
        assert_eq!(held(link(None, None)), (0, 0, false));
        assert_eq!(held(link(Some(true), Some((0, 0)))), (0, 0, false));
        assert_eq!(held(link(Some(true), Some((2, 1)))), (2, 1, true));
        assert_eq!(held(link(Some(false), Some((0, 1)))), (0, 1, true));
        assert_eq!(
            TapInfo::from_link(&link(None, None)).tag.as_deref(),
            Some("x")
        );
    }
}
