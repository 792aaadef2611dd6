//! Opening TAP devices: the Ganeti `OpenTap(name, features)` job, without its
//! leaks. One `/dev/net/tun` fd per queue, TUNGETFEATURES probed before
//! asking for IFF_VNET_HDR or IFF_MULTI_QUEUE, one `/dev/vhost-net` fd per
//! queue when asked. Every fd is close-on-exec and owned by the returned
//! [`Tap`]; on any failure everything opened so far is closed (and so a
//! device the call created is gone).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use nix::errno::Errno;

use crate::device::Tap;
use crate::diagnose::{self, ioctl_error};
use crate::error::{Error, Result};
use crate::link;
use crate::rules::{self, IfName};
use crate::sys::consts::*;
use crate::sys::Sys;
use crate::tun::{self, TUN_PATH, VHOST_NET_PATH};

/// A three-way choice: never, when the host supports it, or required.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tristate {
    Off,
    #[default]
    Auto,
    On,
}

/// What a device carries: Ethernet frames (TAP, `IFF_TAP`) or IP packets
/// (TUN, `IFF_TUN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Tap,
    Tun,
}

impl Mode {
    /// The TUNSETIFF type flag.
    pub fn flag(self) -> u16 {
        match self {
            Mode::Tap => IFF_TAP,
            Mode::Tun => IFF_TUN,
        }
    }

    /// The mode of a device with these TUNGETIFF flags.
    pub fn of_flags(flags: u16) -> Mode {
        if flags & IFF_TUN != 0 {
            Mode::Tun
        } else {
            Mode::Tap
        }
    }

    /// `tap` / `tun`, as the API spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tap => "tap",
            Mode::Tun => "tun",
        }
    }

    /// The kernel's default name template for the mode.
    pub fn template(self) -> &'static str {
        match self {
            Mode::Tap => "tap%d",
            Mode::Tun => "tun%d",
        }
    }
}

/// What to open. `Default` is the kernel-named single-queue tap with
/// vnet_hdr when supported and no vhost.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// TAP (Ethernet frames, the default) or TUN (IP packets). A TUN device
    /// takes no MAC, bridge, vnet header or vhost ([`crate::rules`] refuses
    /// them); `vnet_hdr: Auto` means none for it.
    pub mode: Mode,
    /// `""` (kernel picks `tap%d`), a `%d` template, or an exact name.
    pub name: String,
    /// 1..=256. More than one makes a multi-queue device.
    pub queues: u32,
    pub vnet_hdr: Tristate,
    pub vhost: Tristate,
    /// The clone device; tests point it elsewhere.
    pub tun_path: CString,
    /// The vhost-net device; tests point it elsewhere.
    pub vhost_path: CString,
    /// Fail with EBUSY if the name exists (IFF_TUN_EXCL) instead of attaching.
    pub exclusive: bool,
    /// Fill a `%d` template from vmtap's process-wide counter (with an
    /// existence check and IFF_TUN_EXCL) instead of the kernel's lowest free
    /// number, so a name freed a moment ago is not handed out again.
    pub unique_name: bool,
    /// Make the device persistent (TUNSETPERSIST): it outlives its fds.
    /// Without `owner` or `group`, a device this makes persistent is owned
    /// by the caller's euid (the kernel would let anyone attach otherwise).
    pub persist: bool,
    /// TUNSETOWNER: this uid may attach without CAP_NET_ADMIN.
    pub owner: Option<u32>,
    /// TUNSETGROUP: this gid may attach without CAP_NET_ADMIN.
    pub group: Option<u32>,
    /// TUNSETVNETHDRSZ: 10, 12 or 20.
    pub vnet_hdr_size: Option<i32>,
    /// TUNSETOFFLOAD bits, with QEMU's fallback (without USO, then without UFO).
    pub offloads: Option<u32>,
    /// Link configuration, applied in libvirt's order: MTU, MAC, bridge, up.
    pub mtu: Option<u32>,
    pub mac: Option<[u8; 6]>,
    pub bridge: Option<String>,
    pub up: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            mode: Mode::Tap,
            name: String::new(),
            queues: 1,
            vnet_hdr: Tristate::Auto,
            vhost: Tristate::Off,
            tun_path: CString::new(TUN_PATH).unwrap(),
            vhost_path: CString::new(VHOST_NET_PATH).unwrap(),
            exclusive: false,
            unique_name: false,
            persist: false,
            owner: None,
            group: None,
            vnet_hdr_size: None,
            offloads: None,
            mtu: None,
            mac: None,
            bridge: None,
            up: false,
        }
    }
}

/// The flags TUNSETIFF is asked for, given the request and the host's
/// TUNGETFEATURES. Never IFF_ONE_QUEUE: it has had no effect since Linux 3.8.
/// A TUN device gets no vnet header (`Auto` means none; the rules refuse
/// `On` before this).
pub fn compute_flags(features: u32, queues: u32, vnet_hdr: Tristate, mode: Mode) -> Result<u16> {
    let mut flags = mode.flag() | IFF_NO_PI;
    let has = |f: u16| features & u32::from(f) != 0;
    if !has(mode.flag()) {
        return Err(
            Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(format!(
                "this kernel's TUN driver does not offer {} devices",
                mode.name().to_uppercase()
            )),
        );
    }
    let vnet_hdr = match mode {
        Mode::Tun => Tristate::Off,
        Mode::Tap => vnet_hdr,
    };
    match vnet_hdr {
        Tristate::Off => {}
        Tristate::Auto => {
            if has(IFF_VNET_HDR) {
                flags |= IFF_VNET_HDR
            }
        }
        Tristate::On => {
            if !has(IFF_VNET_HDR) {
                return Err(Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(
                    "this kernel's TUN driver does not offer IFF_VNET_HDR; use vnetHdr: 'auto' or false",
                ));
            }
            flags |= IFF_VNET_HDR
        }
    }
    if queues > 1 {
        if !has(IFF_MULTI_QUEUE) {
            return Err(
                Error::os(Errno::EOPNOTSUPP, "ioctl(TUNGETFEATURES)").with_hint(format!(
                "this kernel's TUN driver does not offer IFF_MULTI_QUEUE (Linux 3.8 or later); \
                 {queues} queues cannot be opened, use queues: 1"
            )),
            );
        }
        flags |= IFF_MULTI_QUEUE;
    }
    Ok(flags)
}

fn open_vhost_set(sys: &dyn Sys, opts: &OpenOptions) -> Result<Vec<OwnedFd>> {
    let mut fds = Vec::with_capacity(opts.queues as usize);
    for _ in 0..opts.queues {
        fds.push(tun::open_vhost(sys, &opts.vhost_path)?);
    }
    Ok(fds)
}

/// Check an exact name before TUNSETIFF: an existing device must be a TUN
/// or TAP device as asked, whose multi_queue flag matches the request
/// (libvirt's hint).
fn precheck_existing(sys: &dyn Sys, name: &str, flags: u16) -> Result<()> {
    let Some(info) = diagnose::inspect(sys, name) else {
        return Ok(());
    };
    if !info.sysfs_matches {
        return Ok(()); // sysfs shows another namespace; let the kernel decide
    }
    let mismatch = match info.tun_flags {
        None => true,
        Some(f) => {
            (f & IFF_TUN != 0) != (flags & IFF_TUN != 0)
                || (f & IFF_MULTI_QUEUE != 0) != (flags & IFF_MULTI_QUEUE != 0)
        }
    };
    if mismatch {
        return Err(diagnose::set_iff(sys, Errno::EINVAL, name, flags));
    }
    Ok(())
}

static NAME_COUNTERS: Mutex<BTreeMap<String, u32>> = Mutex::new(BTreeMap::new());

/// How many candidates one `unique_name` open tries.
const UNIQUE_NAME_TRIES: usize = 4096;

/// The next candidate from `template` (`vnet%d`), from a process-wide
/// counter per template that never goes back (libvirt's `vnet%d` scheme).
fn next_candidate(template: &str) -> String {
    let n = {
        let mut counters = NAME_COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
        let c = counters.entry(template.to_owned()).or_insert(0);
        let n = *c;
        *c = c.wrapping_add(1);
        n
    };
    template.replacen("%d", &n.to_string(), 1)
}

/// Attach `fd` under vmtap's next free name from `template`, created
/// exclusively. One bounded loop over candidates: a name that exists, or
/// that someone creates between the check and TUNSETIFF (EBUSY), moves on
/// to the next.
fn attach_unique(sys: &dyn Sys, fd: BorrowedFd<'_>, template: &str, flags: u16) -> Result<String> {
    let no_free_name = |why: String| {
        Error::os(Errno::ENFILE, "ioctl(TUNSETIFF)")
            .with_ifname(template)
            .with_hint(format!(
                "no free name left for the template {template} {why}"
            ))
    };
    for _ in 0..UNIQUE_NAME_TRIES {
        let name = next_candidate(template);
        if name.len() > rules::MAX_NAME_BYTES {
            return Err(no_free_name(format!(
                "within {} bytes",
                rules::MAX_NAME_BYTES
            )));
        }
        if link::lookup(sys, &name)?.is_some() {
            continue;
        }
        match tun::set_iff(sys, fd, &name, flags | IFF_TUN_EXCL) {
            Err(e) if e.errno() == Some(Errno::EBUSY) => continue,
            other => return other,
        }
    }
    Err(no_free_name(format!("after {UNIQUE_NAME_TRIES} tries")))
}

/// Attach the first queue: TUNSETIFF with the requested name (or, with
/// `unique_name`, vmtap's own next free name, created exclusively).
fn attach_first(
    sys: &dyn Sys,
    fd: BorrowedFd<'_>,
    name: &IfName,
    flags: u16,
    opts: &OpenOptions,
) -> Result<String> {
    if !opts.unique_name {
        if let IfName::Exact(n) = name {
            if !opts.exclusive {
                precheck_existing(sys, n, flags)?;
            }
        }
        return tun::set_iff(sys, fd, name.as_request(), flags);
    }
    let template = match name {
        IfName::Kernel => opts.mode.template(),
        IfName::Template(t) => t.as_str(),
        IfName::Exact(_) => unreachable!("rules::check_open refuses uniqueName with an exact name"),
    };
    attach_unique(sys, fd, template, flags)
}

/// Open a TAP device as `opts` asks. See the module docs.
pub fn open_tap(sys: &dyn Sys, opts: &OpenOptions) -> Result<Tap> {
    let name = rules::check_open(opts)?;
    let queues = opts.queues as usize;

    // vhost first: a missing /dev/vhost-net fails before any device exists.
    let vhost_fds = match opts.vhost {
        Tristate::Off => Vec::new(),
        Tristate::On => open_vhost_set(sys, opts)?,
        // All or nothing: a partial set is closed when the Err is dropped.
        Tristate::Auto => open_vhost_set(sys, opts).unwrap_or_default(),
    };

    let first = tun::open_tun(sys, &opts.tun_path)?;
    let tun_path = || tun::path_str(&opts.tun_path);
    let features = tun::get_features(sys, first.as_fd()).map_err(|e| {
        ioctl_error(e, "ioctl(TUNGETFEATURES)", None)
            .with_path(tun_path())
            .with_hint("the TUN driver did not report its features; is this really /dev/net/tun?")
    })?;
    let mut flags = compute_flags(features, opts.queues, opts.vnet_hdr, opts.mode)
        .map_err(|e| e.with_path(tun_path()))?;
    if opts.exclusive {
        flags |= IFF_TUN_EXCL;
    }

    let mut tap_fds = Vec::with_capacity(queues);
    let ifname = attach_first(sys, first.as_fd(), &name, flags, opts)?;
    tap_fds.push(first);
    // The other queues attach to the device the first one made or found.
    let later = flags & !IFF_TUN_EXCL;
    for _ in 1..queues {
        let fd = tun::open_tun(sys, &opts.tun_path)?;
        tun::set_iff(sys, fd.as_fd(), &ifname, later)?;
        tap_fds.push(fd);
    }

    let (_, actual) = tun::get_iff(sys, tap_fds[0].as_fd())
        .map_err(|e| ioctl_error(e, "ioctl(TUNGETIFF)", Some(&ifname)))?;

    let tap = Tap {
        ifname,
        tap_fds,
        vhost_fds,
        flags: actual,
        features,
    };
    let was_persistent = actual & IFF_PERSIST != 0;
    if let Err(e) = configure(sys, &tap, opts, was_persistent) {
        // A device this call made persistent must not outlive the failure.
        if opts.persist && !was_persistent {
            let _ = tap.set_persist(sys, false);
        }
        return Err(e);
    }
    Ok(tap)
}

/// Apply the open-time configuration: persistence and ownership, then the
/// virtio plumbing, then the link in libvirt's order (MTU before enslaving,
/// then up).
fn configure(sys: &dyn Sys, tap: &Tap, opts: &OpenOptions, was_persistent: bool) -> Result<()> {
    if opts.persist {
        tap.set_persist(sys, true)?;
    }
    // The kernel lets anyone who can open /dev/net/tun attach to a persistent
    // device that has neither an owner nor a group. A device this call makes
    // persistent without either belongs to the caller's euid instead.
    let owner = match opts.owner {
        None if opts.persist && !was_persistent && opts.group.is_none() => {
            // SAFETY: geteuid has no preconditions and cannot fail.
            Some(unsafe { libc::geteuid() })
        }
        o => o,
    };
    if let Some(uid) = owner {
        tap.set_owner(sys, uid)?;
    }
    if let Some(gid) = opts.group {
        tap.set_group(sys, gid)?;
    }
    if let Some(sz) = opts.vnet_hdr_size {
        tap.set_vnet_hdr_size(sys, sz)?;
    }
    if let Some(bits) = opts.offloads {
        tap.set_offloads(sys, bits)?;
    }
    if let Some(mtu) = opts.mtu {
        tap.set_mtu(sys, mtu)?;
    }
    if let Some(mac) = &opts.mac {
        tap.set_mac(sys, mac)?;
    }
    if let Some(br) = &opts.bridge {
        tap.attach_to_bridge(sys, br)?;
    }
    if opts.up {
        tap.set_link_up(sys, true)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::NoSys;

    const ALL: u32 =
        (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE | IFF_VNET_HDR | IFF_MULTI_QUEUE) as u32;

    fn compute_flags(features: u32, queues: u32, vnet_hdr: Tristate) -> Result<u16> {
        super::compute_flags(features, queues, vnet_hdr, Mode::Tap)
    }

    #[test]
    fn tun_flags_have_no_vnet_header() {
        let tun = |q, w| super::compute_flags(ALL, q, w, Mode::Tun).unwrap();
        assert_eq!(tun(1, Tristate::Auto), IFF_TUN | IFF_NO_PI);
        assert_eq!(
            tun(4, Tristate::Auto),
            IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE
        );
        let tap_only = (IFF_TAP | IFF_NO_PI) as u32;
        let e = super::compute_flags(tap_only, 1, Tristate::Off, Mode::Tun).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
    }

    #[test]
    fn flags_follow_features_and_request() {
        assert_eq!(
            compute_flags(ALL, 1, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 1, Tristate::Off).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        assert_eq!(
            compute_flags(ALL, 1, Tristate::On).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR
        );
        assert_eq!(
            compute_flags(ALL, 4, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE
        );
        let old = (IFF_TUN | IFF_TAP | IFF_NO_PI | IFF_ONE_QUEUE) as u32;
        assert_eq!(
            compute_flags(old, 1, Tristate::Auto).unwrap(),
            IFF_TAP | IFF_NO_PI
        );
        let e = compute_flags(old, 1, Tristate::On).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        let e = compute_flags(old, 2, Tristate::Off).unwrap_err();
        assert_eq!(e.code(), "EOPNOTSUPP");
        assert!(e.to_string().contains("IFF_MULTI_QUEUE"), "{e}");
        // Never IFF_ONE_QUEUE, never IFF_TUN.
        for q in [1, 2, 256] {
            for w in [Tristate::Off, Tristate::Auto, Tristate::On] {
                let f = compute_flags(ALL, q, w).unwrap();
                assert_eq!(f & (IFF_ONE_QUEUE | IFF_TUN), 0);
            }
        }
    }

    /// A host where every candidate name exists (`exists`) or where every
    /// exclusive create finds the name taken (EBUSY); counts ioctls.
    struct Crowded {
        exists: bool,
        ioctls: std::sync::atomic::AtomicUsize,
    }

    impl Sys for Crowded {
        fn open(&self, _: &std::ffi::CStr, _: libc::c_int) -> std::result::Result<OwnedFd, Errno> {
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }

        fn control_socket(&self) -> std::result::Result<OwnedFd, Errno> {
            Ok(std::fs::File::open("/dev/null").unwrap().into())
        }

        fn ioctl(
            &self,
            _: BorrowedFd<'_>,
            op: &mut crate::sys::Ioctl<'_>,
        ) -> std::result::Result<(), Errno> {
            use crate::sys::Ioctl;
            self.ioctls
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            match op {
                Ioctl::TunGetFeatures(v) => {
                    **v = ALL;
                    Ok(())
                }
                Ioctl::GetIfIndex(_) if self.exists => Ok(()),
                Ioctl::GetIfIndex(_) => Err(Errno::ENODEV),
                Ioctl::TunSetIff(_) => Err(Errno::EBUSY),
                other => panic!("unexpected {}", other.name()),
            }
        }
    }

    #[test]
    fn unique_names_are_one_bounded_loop() {
        let tries = UNIQUE_NAME_TRIES;
        for (exists, template, per_try) in [(true, "uqa%d", 1), (false, "uqb%d", 3)] {
            let sys = Crowded {
                exists,
                ioctls: Default::default(),
            };
            let opts = OpenOptions {
                name: template.into(),
                unique_name: true,
                ..OpenOptions::default()
            };
            let e = open_tap(&sys, &opts).unwrap_err();
            assert_eq!(e.code(), "ENFILE", "{e}");
            assert!(e.to_string().contains("no free name left"), "{e}");
            // TUNGETFEATURES, then per candidate: the existence check, or the
            // check, the exclusive TUNSETIFF and the look-up explaining its EBUSY.
            let n = sys.ioctls.load(std::sync::atomic::Ordering::SeqCst);
            assert_eq!(n, 1 + per_try * tries, "exists={exists}");
        }
    }

    fn refused(o: OpenOptions) -> &'static str {
        match open_tap(&NoSys, &o) {
            Err(Error::InvalidArgument { range: true, .. }) => "ERR_OUT_OF_RANGE",
            Err(Error::InvalidArgument { .. }) => "ERR_INVALID_ARG_VALUE",
            other => panic!("expected an argument error, got {other:?}"),
        }
    }

    #[test]
    fn open_refuses_before_any_syscall() {
        assert_eq!(
            refused(OpenOptions {
                vnet_hdr: Tristate::Off,
                vnet_hdr_size: Some(12),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                offloads: Some(TUN_F_CSUM | TUN_F_TSO_ECN),
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                name: "vm0".into(),
                unique_name: true,
                ..OpenOptions::default()
            }),
            "ERR_INVALID_ARG_VALUE"
        );
        assert_eq!(
            refused(OpenOptions {
                queues: 257,
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
        assert_eq!(
            refused(OpenOptions {
                mtu: Some(70000),
                ..OpenOptions::default()
            }),
            "ERR_OUT_OF_RANGE"
        );
    }
}
