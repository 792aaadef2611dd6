//! Interface-name validation, done before any syscall.
//!
//! The kernel silently truncates a 16-byte name to 15 (it zeroes
//! `ifr_name[15]`) and fills a `%d` with the lowest free number, so names are
//! checked here: 1-15 bytes of printable ASCII without `/`, `:`, whitespace or
//! `%`, except a single `%d` template. An empty name lets the kernel pick
//! (`tap%d`).

use crate::error::{Error, Result};
use crate::sys::IFNAMSIZ;

/// What kind of name the caller gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfName {
    /// No name: the kernel picks `tap%d`.
    Kernel,
    /// A template with one `%d`, e.g. `vm%d`: the kernel fills the number.
    Template(String),
    /// An exact name: created if absent, attached to if it exists.
    Exact(String),
}

impl IfName {
    /// The string to put in `ifr_name` (empty for [`IfName::Kernel`]).
    pub fn as_request(&self) -> &str {
        match self {
            IfName::Kernel => "",
            IfName::Template(s) | IfName::Exact(s) => s,
        }
    }

    /// Whether the kernel will choose the final name.
    pub fn is_pattern(&self) -> bool {
        !matches!(self, IfName::Exact(_))
    }
}

/// Validate `name`; see the module docs for the rules.
pub fn parse_name(name: &str) -> Result<IfName> {
    if name.is_empty() {
        return Ok(IfName::Kernel);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= IFNAMSIZ {
        return Err(Error::invalid(
            "name",
            format!(
                "interface name {name:?} is {} bytes; the kernel allows at most {}",
                bytes.len(),
                IFNAMSIZ - 1
            ),
        ));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(
            "name",
            format!("interface name {name:?} is reserved"),
        ));
    }
    let mut templates = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                if bytes.get(i + 1) == Some(&b'd') {
                    templates += 1;
                    i += 2;
                    continue;
                }
                return Err(Error::invalid(
                    "name",
                    format!("interface name {name:?} has a '%' that is not part of a single %d"),
                ));
            }
            b'/' | b':' => {
                return Err(Error::invalid(
                    "name",
                    format!("interface name {name:?} contains {:?}", b as char),
                ))
            }
            0x21..=0x7e => {}
            _ => {
                return Err(Error::invalid(
                    "name",
                    format!("interface name {name:?} must be printable ASCII without whitespace"),
                ))
            }
        }
        i += 1;
    }
    match templates {
        0 => Ok(IfName::Exact(name.to_owned())),
        1 => Ok(IfName::Template(name.to_owned())),
        _ => Err(Error::invalid(
            "name",
            format!("interface name {name:?} has more than one %d"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(name: &str) {
        match parse_name(name) {
            Err(Error::InvalidArgument {
                name: "name",
                range: false,
                ..
            }) => {}
            other => panic!("{name:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn accepts_kernel_template_and_exact() {
        assert_eq!(parse_name("").unwrap(), IfName::Kernel);
        assert_eq!(parse_name("vm%d").unwrap(), IfName::Template("vm%d".into()));
        assert_eq!(parse_name("%d").unwrap(), IfName::Template("%d".into()));
        assert_eq!(parse_name("vm0").unwrap(), IfName::Exact("vm0".into()));
        assert_eq!(
            parse_name("abcdefghijklmno").unwrap(),
            IfName::Exact("abcdefghijklmno".into())
        );
        assert_eq!(
            parse_name("a-b_c.d@e").unwrap(),
            IfName::Exact("a-b_c.d@e".into())
        );
        assert_eq!(parse_name("").unwrap().as_request(), "");
        assert!(parse_name("x%d").unwrap().is_pattern());
        assert!(!parse_name("x").unwrap().is_pattern());
    }

    #[test]
    fn refuses_what_the_kernel_would_mangle_or_reject() {
        bad("abcdefghijklmnop"); // 16 bytes: the kernel would truncate
        bad("a/b");
        bad("a:b");
        bad("a b");
        bad("a\tb");
        bad("a\nb");
        bad("a\0b");
        bad("é");
        bad("a\u{7f}");
        bad("vm%s");
        bad("vm%");
        bad("%d%d");
        bad("%%d");
        bad(".");
        bad("..");
    }
}
