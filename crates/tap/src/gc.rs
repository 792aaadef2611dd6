//! Collecting leftovers: persistent TUN/TAP devices that carry a vmtap tag
//! (a given one, or any) and that no process holds — what a crashed VM
//! manager leaves behind. Untagged devices and held ones are never touched.
//!
//! Removing a persistent device means attaching to it, TUNSETPERSIST 0 and
//! closing, as [`crate::delete_tap`] does; but a device a VMM acquires
//! between the check and the delete must not be deleted from under it.
//! The kernel does the checking, per device:
//!
//! 1. The dump already shows a holder (attached or disabled queues): kept,
//!    without attaching.
//! 2. Attach one queue with the device's own flags (so a single-queue
//!    attach, which overwrites the device's flags, writes the same ones).
//!    A single-queue device that was acquired since the dump refuses it
//!    (EBUSY): kept. While we are attached nobody else can attach to a
//!    single-queue device, so from here on it is ours alone.
//! 3. Check, by ifindex, that the device attached to is the one from the
//!    dump and still persistent (else it vanished or was replaced: the fd
//!    is closed, taking with it a device this attach may have created).
//! 4. Multi-queue devices take more queues from anyone at any time: the
//!    queue count must be ours alone (1) before TUNSETPERSIST 0 and again
//!    after it (else persistence is restored: kept). After the close the
//!    device must be gone; if a queue was attached in the moment between
//!    the last check and the close, the device is still there: it is
//!    attached to again and made persistent again (kept).
//!
//! Residual race (multi-queue only): a queue attached after the last check
//! and closed again before that repair finds the device gone with it, as if
//! it had not been persistent. A VMM opening a single-queue device during
//! step 2-4 (microseconds) gets EBUSY, as it would from any other holder.
//!
//! A reader of `/proc/<pid>/fdinfo/<fd>` (a holders walk, `lsof`) holds a
//! reference to the file it reads for a moment; a close that races with it
//! leaves the release, and so the teardown, to the reader. A removed
//! device may then linger (not persistent) for that moment, and a
//! multi-queue device may be found still there after the close and be kept
//! (made persistent again): the safe side.

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use nix::errno::Errno;

use crate::diagnose;
use crate::error::{Error, Result};
use crate::holders::{self, Holder};
use crate::inventory::{self, TapInfo};
use crate::netlink::{Link, LinkRef, Netlink};
use crate::netns::{self, NetNs, NetNsSpec};
use crate::rules;
use crate::sys::consts::*;
use crate::sys::{Ioctl, Sys};
use crate::tun::{self, TUN_PATH};

/// What to collect.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only devices with this tag; `None`: any vmtap tag.
    pub tag: Option<String>,
    /// Report what would be removed (from the dump alone), remove nothing.
    pub dry_run: bool,
    /// The clone device.
    pub tun_path: CString,
    /// The network namespace to collect in; `None`: the caller's.
    pub netns: Option<NetNsSpec>,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            tag: None,
            dry_run: false,
            tun_path: CString::new(TUN_PATH).unwrap(),
            netns: None,
        }
    }
}

/// A tagged persistent device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcEntry {
    pub ifname: String,
    pub ifindex: u32,
    pub tag: String,
}

/// What a collection did.
#[derive(Debug, Default)]
pub struct GcReport {
    /// Removed (with `dry_run`: unheld, so they would be).
    pub removed: Vec<GcEntry>,
    /// Held, so kept; with the holders `/proc` shows (possibly none: a
    /// process whose fds this one may not read).
    pub kept: Vec<(GcEntry, Vec<Holder>)>,
    /// Could not be examined or removed: left as they were, unless the
    /// error says otherwise (a multi-queue device closed, whose absence
    /// could not be checked).
    pub failed: Vec<(GcEntry, Error)>,
}

enum Outcome {
    Removed,
    Held,
    /// Gone or replaced since the dump: nothing of ours to do.
    Gone,
}

/// Remove the persistent devices tagged `opts.tag` (any tag when `None`)
/// that no process holds. See the module docs. A failure to list the
/// devices fails the call; a failure on one device is reported in
/// [`GcReport::failed`] and the others are still collected.
pub fn gc_taps(sys: &dyn Sys, opts: &GcOptions) -> Result<GcReport> {
    if let Some(t) = &opts.tag {
        rules::check_tag(t)?;
    }
    let ns = NetNs::open_opt(sys, opts.netns.as_ref())?;
    netns::run_in(sys, ns.as_ref(), || gc_here(sys, opts))
}

/// [`gc_taps`] in the current thread's namespace.
fn gc_here(sys: &dyn Sys, opts: &GcOptions) -> Result<GcReport> {
    let mut nl = Netlink::open(sys)?;
    let mut report = GcReport::default();
    let mut held = Vec::new();
    for t in inventory::list_with(&mut nl)? {
        let Some(tag) = t.tag.clone() else { continue };
        if !t.persist || opts.tag.as_ref().is_some_and(|want| *want != tag) {
            continue;
        }
        let entry = GcEntry {
            ifname: t.ifname.clone(),
            ifindex: t.ifindex,
            tag,
        };
        if t.held() {
            held.push(entry);
            continue;
        }
        if opts.dry_run {
            report.removed.push(entry);
            continue;
        }
        match collect(sys, &mut nl, &t, &opts.tun_path) {
            Ok(Outcome::Removed) => report.removed.push(entry),
            Ok(Outcome::Held) => held.push(entry),
            Ok(Outcome::Gone) => {}
            Err(e) => report
                .failed
                .push((entry, e.with_ifname(t.ifname.as_str()))),
        }
    }
    if !held.is_empty() {
        // Who holds them, for the report only: a failed walk loses the names.
        let names: BTreeSet<&str> = held.iter().map(|e| e.ifname.as_str()).collect();
        let mut by_name = holders::scan(sys, &|n| names.contains(n)).unwrap_or_default();
        report.kept = held
            .into_iter()
            .map(|e| {
                let h = by_name.remove(&e.ifname).unwrap_or_default();
                (e, h)
            })
            .collect();
    }
    Ok(report)
}

/// The TUNSETIFF flags of the device as it is (never IFF_TUN_EXCL).
fn attach_flags(t: &TapInfo) -> u16 {
    let mut f = if t.tap { IFF_TAP } else { IFF_TUN };
    if !t.pi {
        f |= IFF_NO_PI;
    }
    if t.vnet_hdr {
        f |= IFF_VNET_HDR;
    }
    if t.multi_queue {
        f |= IFF_MULTI_QUEUE;
    }
    f
}

/// Queues attached to `l` besides our one.
fn others_attached(l: &Link) -> bool {
    l.tun
        .is_some_and(|i| i.num_queues.unwrap_or(0) + i.num_disabled_queues.unwrap_or(0) > 1)
}

/// Attach a queue to `t` by name. `Ok(None)`: it is held (EBUSY).
fn attach(sys: &dyn Sys, t: &TapInfo, tun_path: &CString) -> Result<Option<OwnedFd>> {
    let fd = tun::open_tun(sys, tun_path)?;
    let flags = attach_flags(t);
    match tun::set_iff_raw(sys, fd.as_fd(), &t.ifname, flags) {
        Ok(_) => Ok(Some(fd)),
        Err(Errno::EBUSY) => Ok(None),
        Err(e) => Err(diagnose::set_iff(sys, e, &t.ifname, flags)),
    }
}

/// The device from the dump, by ifindex, if it is still there under its
/// name and persistent.
fn still_ours(nl: &mut Netlink<'_>, t: &TapInfo) -> Result<Option<Link>> {
    Ok(nl
        .link(LinkRef::Index(t.ifindex))?
        .filter(|l| l.ifname == t.ifname && l.tun.is_some_and(|i| i.persist)))
}

fn set_persist(sys: &dyn Sys, fd: &OwnedFd, t: &TapInfo, on: bool) -> Result<()> {
    diagnose::ioctl(sys, fd.as_fd(), &mut Ioctl::TunSetPersist(on), &t.ifname)
}

fn collect(
    sys: &dyn Sys,
    nl: &mut Netlink<'_>,
    t: &TapInfo,
    tun_path: &CString,
) -> Result<Outcome> {
    let Some(fd) = attach(sys, t, tun_path)? else {
        return Ok(Outcome::Held);
    };
    // Dropping `fd` from here on detaches, and removes a device the attach
    // created (it is not persistent).
    let Some(now) = still_ours(nl, t)? else {
        return Ok(Outcome::Gone);
    };
    if t.multi_queue && others_attached(&now) {
        return Ok(Outcome::Held);
    }
    set_persist(sys, &fd, t, false)?;
    if t.multi_queue {
        let acquired = match nl.link(LinkRef::Index(t.ifindex)) {
            Ok(l) => l.as_ref().is_some_and(others_attached),
            Err(e) => {
                let _ = set_persist(sys, &fd, t, true);
                return Err(e);
            }
        };
        if acquired {
            set_persist(sys, &fd, t, true)?;
            return Ok(Outcome::Held);
        }
    }
    drop(fd);
    if !t.multi_queue {
        // Nobody could attach while we were: closing the last fd of a
        // device that is not persistent unregisters it.
        return Ok(Outcome::Removed);
    }
    let after = nl.link(LinkRef::Index(t.ifindex)).map_err(|e| {
        e.with_hint(format!(
            "{} was made non-persistent and closed, so it is gone unless a process attached to \
             it at that moment; that could not be checked",
            t.ifname
        ))
    })?;
    if after.is_none() {
        return Ok(Outcome::Removed);
    }
    // A queue was attached in the last moment: make the device persistent
    // again (unless its holder let it go meanwhile).
    let Some(fd) = attach(sys, t, tun_path)? else {
        return Err(Error::os(Errno::EBUSY, "ioctl(TUNSETIFF)").with_hint(
            "a process attached to the device while it was being collected; it is no longer persistent",
        ));
    };
    match still_ours_any(nl, t)? {
        true => {
            set_persist(sys, &fd, t, true)?;
            Ok(Outcome::Held)
        }
        false => Ok(Outcome::Removed),
    }
}

/// Whether the device from the dump is still there under its name
/// (persistent or not).
fn still_ours_any(nl: &mut Netlink<'_>, t: &TapInfo) -> Result<bool> {
    Ok(nl
        .link(LinkRef::Index(t.ifindex))?
        .is_some_and(|l| l.ifname == t.ifname))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    #[test]
    fn a_bad_tag_is_refused_before_any_syscall() {
        let opts = GcOptions {
            tag: Some("no spaces".into()),
            ..GcOptions::default()
        };
        assert_eq!(
            gc_taps(&NoSys, &opts).unwrap_err().code(),
            "ERR_INVALID_ARG_VALUE"
        );
    }

    #[test]
    fn attach_flags_are_the_devices_own() {
        let t = TapInfo {
            tap: true,
            vnet_hdr: true,
            multi_queue: true,
            ..TapInfo::default()
        };
        assert_eq!(
            attach_flags(&t),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let tun_pi = TapInfo {
            pi: true,
            ..TapInfo::default()
        };
        assert_eq!(attach_flags(&tun_pi), IFF_TUN);
    }
}
