//! Who holds a TUN/TAP device: the processes with an fd attached to it.
//!
//! The kernel shows the device a tun file is attached to in
//! `/proc/<pid>/fdinfo/<fd>` as a line `iff:\t<ifname>`. This walks
//! `/proc` (through [`Sys`]: `read_dir`, `read_link`, `read_file`, so tests
//! can script it and fail any step): every process, every fd whose link is a
//! path (sockets, pipes and anonymous inodes are skipped without reading
//! their fdinfo), that fd's fdinfo.
//!
//! Processes come and go during the walk: a pid or an fd that vanished
//! (ENOENT, ESRCH) is skipped, and so is a process whose fds this one may
//! not read (EACCES, EPERM: another user's, when not root). Any other
//! failure is an error naming the path.
//!
//! The name in fdinfo is the device's name in its own network namespace,
//! and fdinfo does not say which namespace that is: a process holding a
//! device of the same name in another namespace is listed too.

use std::collections::BTreeMap;
use std::ffi::CString;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::rules;
use crate::sys::Sys;

/// A process holding fds attached to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// `/proc/<pid>/comm`: the executable's name, at most 15 bytes
    /// (`qemu-system-x86`).
    pub command: String,
    /// The fds attached to the device, ascending.
    pub fds: Vec<i32>,
}

/// The `iff:` line of a tun file's fdinfo: the device's name.
pub fn parse_iff(fdinfo: &[u8]) -> Option<&str> {
    fdinfo
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"iff:\t"))
        .and_then(|name| std::str::from_utf8(name).ok())
}

fn c_path(path: &str) -> CString {
    // Built from numbers and fixed text: never a NUL inside.
    CString::new(path).expect("a /proc path has no NUL")
}

/// The process or fd is gone, or is not ours to look at: skip it.
fn skippable(e: Errno) -> bool {
    matches!(
        e,
        Errno::ENOENT | Errno::ESRCH | Errno::EACCES | Errno::EPERM
    )
}

fn proc_error(e: Errno, syscall: &'static str, path: &str) -> Error {
    Error::os(e, syscall)
        .with_path(path)
        .with_hint("could not read /proc to find the processes holding TUN/TAP devices")
}

/// Every process with an fd attached to a device whose name `want`
/// accepts, by device name. Processes in pid order, fds ascending.
pub fn scan(sys: &dyn Sys, want: &dyn Fn(&str) -> bool) -> Result<BTreeMap<String, Vec<Holder>>> {
    let proc_dir = "/proc";
    let mut pids: Vec<u32> = sys
        .read_dir(&c_path(proc_dir))
        .map_err(|e| proc_error(e, "scandir", proc_dir))?
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    pids.sort_unstable();
    let mut out: BTreeMap<String, Vec<Holder>> = BTreeMap::new();
    for pid in pids {
        let fd_dir = format!("/proc/{pid}/fd");
        let mut fds: Vec<i32> = match sys.read_dir(&c_path(&fd_dir)) {
            Ok(names) => names.iter().filter_map(|n| n.parse().ok()).collect(),
            Err(e) if skippable(e) => continue,
            Err(e) => return Err(proc_error(e, "scandir", &fd_dir)),
        };
        fds.sort_unstable();
        // Device name → this process's fds on it.
        let mut found: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for fd in fds {
            let link = format!("/proc/{pid}/fd/{fd}");
            match sys.read_link(&c_path(&link)) {
                // A file: maybe a tun file, whatever its node is called.
                Ok(target) if target.first() == Some(&b'/') => {}
                // socket:[...], pipe:[...], anon_inode:[...]
                Ok(_) => continue,
                Err(e) if skippable(e) => continue,
                Err(e) => return Err(proc_error(e, "readlink", &link)),
            }
            let info_path = format!("/proc/{pid}/fdinfo/{fd}");
            let info = match sys.read_file(&c_path(&info_path)) {
                Ok(info) => info,
                Err(e) if skippable(e) => continue,
                Err(e) => return Err(proc_error(e, "read", &info_path)),
            };
            if let Some(name) = parse_iff(&info).filter(|n| want(n)) {
                found.entry(name.to_owned()).or_default().push(fd);
            }
        }
        if found.is_empty() {
            continue;
        }
        let comm_path = format!("/proc/{pid}/comm");
        let command = match sys.read_file(&c_path(&comm_path)) {
            Ok(c) => String::from_utf8_lossy(&c)
                .trim_end_matches('\n')
                .to_owned(),
            // Gone since its fds were read: it holds nothing any more.
            Err(Errno::ENOENT | Errno::ESRCH) => continue,
            Err(Errno::EACCES | Errno::EPERM) => String::new(),
            Err(e) => return Err(proc_error(e, "read", &comm_path)),
        };
        for (name, fds) in found {
            out.entry(name).or_default().push(Holder {
                pid,
                command: command.clone(),
                fds,
            });
        }
    }
    Ok(out)
}

/// The processes holding fds attached to the device `name` (an exact
/// interface name; it need not exist). See the module docs.
pub fn tap_holders(sys: &dyn Sys, name: &str) -> Result<Vec<Holder>> {
    let name = match rules::parse_name(name)? {
        rules::IfName::Exact(n) => n,
        _ => {
            return Err(Error::invalid(
                "name",
                "name must be an interface name, not a template",
            ))
        }
    };
    Ok(scan(sys, &|n| n == name)
        .map_err(|e| e.with_ifname(name.as_str()))?
        .remove(&name)
        .unwrap_or_default())
}

/// `pid 1234 (qemu-system-x86), pid 99 (node)`.
pub fn describe(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| {
            if h.command.is_empty() {
                format!("pid {}", h.pid)
            } else {
                format!("pid {} ({})", h.pid, h.command)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::fd::{BorrowedFd, OwnedFd};

    /// A scripted /proc: paths to directory entries, link targets, file
    /// contents or errnos.
    #[derive(Default)]
    struct FakeProc {
        dirs: HashMap<String, Result<Vec<String>, Errno>>,
        links: HashMap<String, Result<Vec<u8>, Errno>>,
        files: HashMap<String, Result<Vec<u8>, Errno>>,
    }

    impl FakeProc {
        fn dir(&mut self, p: &str, names: &[&str]) {
            let v = names.iter().map(|s| s.to_string()).collect();
            self.dirs.insert(p.into(), Ok(v));
        }
        fn process(&mut self, pid: u32, comm: &str, fds: &[(i32, &str, Option<&str>)]) {
            let names: Vec<String> = fds.iter().map(|(fd, ..)| fd.to_string()).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            self.dir(&format!("/proc/{pid}/fd"), &refs);
            for (fd, target, iff) in fds {
                self.links.insert(
                    format!("/proc/{pid}/fd/{fd}"),
                    Ok(target.as_bytes().to_vec()),
                );
                let mut info = "pos:\t0\nflags:\t02\nmnt_id:\t1\nino:\t5\n".to_string();
                if let Some(n) = iff {
                    info.push_str(&format!("iff:\t{n}\n"));
                }
                self.files
                    .insert(format!("/proc/{pid}/fdinfo/{fd}"), Ok(info.into_bytes()));
            }
            self.files.insert(
                format!("/proc/{pid}/comm"),
                Ok(format!("{comm}\n").into_bytes()),
            );
        }
    }

    impl Sys for FakeProc {
        fn open(&self, _: &std::ffi::CStr, _: libc::c_int) -> Result<OwnedFd, Errno> {
            panic!("open")
        }
        fn control_socket(&self) -> Result<OwnedFd, Errno> {
            panic!("socket")
        }
        fn ioctl(&self, _: BorrowedFd<'_>, _: &mut crate::sys::Ioctl<'_>) -> Result<(), Errno> {
            panic!("ioctl")
        }
        fn read_dir(&self, p: &std::ffi::CStr) -> Result<Vec<String>, Errno> {
            let p = p.to_str().unwrap();
            self.dirs.get(p).cloned().unwrap_or(Err(Errno::ENOENT))
        }
        fn read_link(&self, p: &std::ffi::CStr) -> Result<Vec<u8>, Errno> {
            let p = p.to_str().unwrap();
            self.links.get(p).cloned().unwrap_or(Err(Errno::ENOENT))
        }
        fn read_file(&self, p: &std::ffi::CStr) -> Result<Vec<u8>, Errno> {
            let p = p.to_str().unwrap();
            self.files.get(p).cloned().unwrap_or(Err(Errno::ENOENT))
        }
    }

    fn host() -> FakeProc {
        let mut f = FakeProc::default();
        f.dir("/proc", &["1", "self", "net", "4321", "77", "900", "55"]);
        f.process(
            1,
            "init",
            &[(0, "/dev/null", None), (3, "socket:[12]", None)],
        );
        f.process(
            4321,
            "qemu-system-x86",
            &[
                (12, "/dev/net/tun", Some("vm0")),
                (3, "/dev/kvm", None),
                (10, "/dev/net/tun", Some("vm0")),
                (11, "/dev/net/tun", Some("vm1")),
                (13, "pipe:[7]", Some("vm0")), // never read: not a file
            ],
        );
        // A tun file opened through another node, and one whose node is gone.
        f.process(
            77,
            "node",
            &[
                (20, "/tmp/mytun", Some("vm0")),
                (21, "/dev/net/tun (deleted)", Some("vm2")),
            ],
        );
        // 900 vanished after /proc was listed; 55's fds are not ours to read.
        f.dirs.insert("/proc/55/fd".into(), Err(Errno::EACCES));
        f
    }

    #[test]
    fn finds_every_fd_on_the_device() {
        let f = host();
        let h = tap_holders(&f, "vm0").unwrap();
        assert_eq!(
            h,
            vec![
                Holder {
                    pid: 77,
                    command: "node".into(),
                    fds: vec![20]
                },
                Holder {
                    pid: 4321,
                    command: "qemu-system-x86".into(),
                    fds: vec![10, 12]
                },
            ]
        );
        assert_eq!(describe(&h), "pid 77 (node), pid 4321 (qemu-system-x86)");
        assert_eq!(tap_holders(&f, "vm2").unwrap()[0].fds, vec![21]);
        assert!(tap_holders(&f, "vm9").unwrap().is_empty());
        let all = scan(&f, &|_| true).unwrap();
        assert_eq!(all.keys().collect::<Vec<_>>(), ["vm0", "vm1", "vm2"]);
    }

    #[test]
    fn vanishing_processes_and_fds_are_skipped() {
        let mut f = host();
        // An fd closed between the listing and the readlink, another between
        // the readlink and the fdinfo; a process gone before its comm is read.
        f.links
            .insert("/proc/4321/fd/10".into(), Err(Errno::ENOENT));
        f.files
            .insert("/proc/4321/fdinfo/12".into(), Err(Errno::ESRCH));
        f.files.insert("/proc/77/comm".into(), Err(Errno::ENOENT));
        assert_eq!(tap_holders(&f, "vm0").unwrap(), vec![]);
        assert_eq!(tap_holders(&f, "vm1").unwrap()[0].fds, vec![11]);
    }

    #[test]
    fn other_failures_are_errors_with_the_path() {
        let mut f = host();
        f.files
            .insert("/proc/4321/fdinfo/12".into(), Err(Errno::EIO));
        let e = tap_holders(&f, "vm0").unwrap_err();
        assert_eq!(e.code(), "EIO");
        let text = e.to_string();
        assert!(text.starts_with("EIO: "), "{text}");
        assert!(
            text.ends_with(
                ", read '/proc/4321/fdinfo/12': could not read /proc to find the processes \
                 holding TUN/TAP devices"
            ),
            "{text}"
        );
        f.dirs.insert("/proc".into(), Err(Errno::EMFILE));
        assert_eq!(tap_holders(&f, "vm0").unwrap_err().code(), "EMFILE");
    }

    #[test]
    fn names_are_checked_before_any_syscall() {
        use crate::fault::NoSys;
        for bad in ["", "vm%d", "a/b", "abcdefghijklmnop"] {
            assert_eq!(
                tap_holders(&NoSys, bad).unwrap_err().code(),
                "ERR_INVALID_ARG_VALUE",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn iff_line() {
        assert_eq!(parse_iff(b"pos:\t0\niff:\tvm0\n"), Some("vm0"));
        assert_eq!(parse_iff(b"iff:\tx"), Some("x"));
        assert_eq!(parse_iff(b"pos:\t0\nflags:\t02\n"), None);
        assert_eq!(parse_iff(b"xiff:\tvm0\n"), None);
    }
}
