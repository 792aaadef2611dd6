//! Helpers shared by the netlink tests that need root: a network namespace
//! of their own (created with `ip netns add`, deleted on drop), code run on a
//! thread inside it (setns), `ip -n NS -j ...` output read with a small JSON
//! reader (no serde here: the crate registry is out of reach).

#![allow(dead_code)] // each test binary uses its own part

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A network namespace that lives as long as this value.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let name = format!("vmtap-nl-{}-{tag}-{n}", std::process::id());
        run("ip", &["netns", "add", &name]);
        Netns { name }
    }

    /// `ip -n NS args...`, which must succeed; its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `ip -n NS -j args...` as JSON.
    pub fn ip_json(&self, args: &[&str]) -> Json {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        Json::parse(&self.ip(&all))
    }

    /// A command inside the namespace (`ip netns exec`), e.g. `bridge`.
    pub fn exec(&self, cmd: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.name, cmd];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Run `f` on a thread that has entered the namespace. What `f` opens
    /// there (netlink sockets, /dev/net/tun) stays in the namespace when
    /// used from other threads afterwards.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let ns = File::open(&path).unwrap();
                // SAFETY: setns(2) with a namespace fd we hold; it moves only
                // this thread, which is ours and ends after `f`.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                drop(ns);
                f()
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// A JSON value, enough for `ip -j` output.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(s: &str) -> Json {
        let mut p = Parser {
            s: s.as_bytes(),
            i: 0,
        };
        let v = p.value();
        p.ws();
        assert_eq!(p.i, p.s.len(), "trailing JSON: {s}");
        v
    }

    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Obj(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        match self.get(key)? {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self, key: &str) -> Option<u64> {
        match self.get(key)? {
            Json::Num(n) => Some(*n as u64),
            _ => None,
        }
    }

    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            Json::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(v) => v,
            _ => &[],
        }
    }

    pub fn strs(&self, key: &str) -> Vec<String> {
        self.get(key)
            .map(|v| {
                v.arr()
                    .iter()
                    .filter_map(|x| match x {
                        Json::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(self.s[self.i], c, "JSON at {}", self.i);
        self.i += 1;
    }

    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut kv = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(kv);
                }
                loop {
                    self.ws();
                    let k = self.string();
                    self.eat(b':');
                    kv.push((k, self.value()));
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b'}' {
                        return Json::Obj(kv);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b']' {
                        return Json::Arr(v);
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            _ => {
                let start = self.i;
                while self.i < self.s.len() && b"+-.eE0123456789".contains(&self.s[self.i]) {
                    self.i += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.i]).unwrap();
                Json::Num(
                    text.parse()
                        .unwrap_or_else(|_| panic!("JSON number {text}")),
                )
            }
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Json {
        assert!(self.s[self.i..].starts_with(w.as_bytes()));
        self.i += w.len();
        v
    }

    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => return String::from_utf8(out).unwrap(),
                b'\\' => {
                    let e = self.s[self.i];
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' => out.push(8),
                        b'f' => out.push(12),
                        b'u' => {
                            let hex = std::str::from_utf8(&self.s[self.i..self.i + 4]).unwrap();
                            self.i += 4;
                            let c = char::from_u32(u32::from_str_radix(hex, 16).unwrap())
                                .unwrap_or('\u{fffd}');
                            out.extend_from_slice(c.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
    }
}

#[test]
fn json_reader() {
    let v = Json::parse(
        r#" [ {"a": 1, "b": [true, false, null], "c": "x\"y\u0041", "d": {}, "e": []}, -2.5e1 ] "#,
    );
    let o = &v.arr()[0];
    assert_eq!(o.num("a"), Some(1));
    assert_eq!(o.get("b").unwrap().arr().len(), 3);
    assert_eq!(o.str("c"), Some("x\"yA"));
    assert_eq!(o.get("d"), Some(&Json::Obj(vec![])));
    assert_eq!(v.arr()[1], Json::Num(-25.0));
}

impl Netns {
    /// `queues` fds attached to the tun/tap `name` with `flags` (TUNSETIFF),
    /// opened in this namespace.
    pub fn hold(&self, name: &str, flags: u16, queues: usize) -> Vec<OwnedFd> {
        use vmtap_core::sys::{IfReq, Ioctl, Sys};
        use vmtap_core::RealSys;
        self.enter(|| {
            (0..queues)
                .map(|_| {
                    let fd = RealSys.open(c"/dev/net/tun", libc::O_RDWR).unwrap();
                    let mut req = IfReq::with_name_flags(name, flags);
                    RealSys
                        .ioctl(fd.as_fd(), &mut Ioctl::TunSetIff(&mut req))
                        .unwrap();
                    fd
                })
                .collect()
        })
    }

    /// The persistent tun/tap devices of this namespace, by name, sorted.
    pub fn persistent_taps(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .ip_json(&["-d", "link", "show", "type", "tun"])
            .arr()
            .iter()
            .filter(|j| {
                j.get("linkinfo")
                    .and_then(|i| i.get("info_data"))
                    .and_then(|d| d.bool("persist"))
                    == Some(true)
            })
            .map(|j| j.str("ifname").unwrap().to_owned())
            .collect();
        v.sort();
        v
    }
}
