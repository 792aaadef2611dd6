//! Netlink messages: a request builder ([`Request`]) and readers that borrow
//! from the receive buffer ([`messages`], [`attrs`], [`Ack`]).
//!
//! Layouts (`<linux/netlink.h>`): a message is a 16-byte `nlmsghdr`
//! (`u32 len, u16 type, u16 flags, u32 seq, u32 pid`, host byte order),
//! then a family header, then attributes; an attribute is `u16 len, u16
//! type` and its payload; messages and attributes start on 4-byte
//! boundaries, and an attribute's `len` does not count its padding.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{
    NLA_TYPE_MASK, NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS, NLM_F_ACK_TLVS, NLM_F_CAPPED,
    NLM_F_REQUEST,
};

/// `sizeof(struct nlmsghdr)`.
pub const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct nlattr)`.
pub const NLA_HDRLEN: usize = 4;

/// `NLMSG_ALIGN` / `NLA_ALIGN`: round up to 4 bytes.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// A request being built. `nlmsg_len` is kept up to date; the sequence
/// number is set by the socket when it sends ([`Request::set_seq`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    buf: Vec<u8>,
}

/// The start of an open nested attribute (see [`Request::nest`]).
#[derive(Debug)]
#[must_use = "close the nest with Request::end"]
pub struct Nest(usize);

impl Request {
    /// A request of `msg_type`; `NLM_F_REQUEST` is added to `flags`.
    pub fn new(msg_type: u16, flags: u16) -> Self {
        let mut buf = Vec::with_capacity(256);
        buf.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&[0; 8]); // seq, pid (0: the kernel fills in ours)
        Request { buf }
    }

    pub fn msg_type(&self) -> u16 {
        u16::from_ne_bytes([self.buf[4], self.buf[5]])
    }

    pub fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    pub fn seq(&self) -> u32 {
        read_u32(&self.buf[8..12]).unwrap_or(0)
    }

    pub fn set_seq(&mut self, seq: u32) {
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    }

    /// The whole message.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn pad_and_update(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
        let len = self.buf.len() as u32;
        self.buf[..4].copy_from_slice(&len.to_ne_bytes());
    }

    /// Append raw bytes (a family header), padded to 4 bytes.
    pub fn push(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad_and_update();
        self
    }

    /// Append an attribute. Payloads are small (names, addresses, numbers),
    /// far below the 64 KiB an attribute can hold.
    pub fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + payload.len();
        debug_assert!(len <= usize::from(u16::MAX));
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad_and_update();
        self
    }

    pub fn attr_u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.attr(ty, &[v])
    }

    pub fn attr_u16(&mut self, ty: u16, v: u16) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    pub fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }

    /// A NUL-terminated string (`NLA_NUL_STRING`, and what `ip` sends for
    /// `IFLA_IFNAME`).
    pub fn attr_cstr(&mut self, ty: u16, s: &str) -> &mut Self {
        let len = NLA_HDRLEN + s.len() + 1;
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.pad_and_update();
        self
    }

    /// An IP address in network byte order (4 or 16 bytes).
    pub fn attr_ip(&mut self, ty: u16, ip: &IpAddr) -> &mut Self {
        match ip {
            IpAddr::V4(a) => self.attr(ty, &a.octets()),
            IpAddr::V6(a) => self.attr(ty, &a.octets()),
        }
    }

    /// Open a nested attribute of type `ty` (add [`NLA_F_NESTED`] to `ty`
    /// where the kernel wants it); attributes added until [`Request::end`]
    /// go inside it.
    pub fn nest(&mut self, ty: u16) -> Nest {
        let start = self.buf.len();
        self.attr(ty, &[]);
        Nest(start)
    }

    /// Close a nested attribute: its length covers everything added since.
    pub fn end(&mut self, nest: Nest) -> &mut Self {
        let len = self.buf.len() - nest.0;
        debug_assert!(len <= usize::from(u16::MAX));
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&(len as u16).to_ne_bytes());
        self
    }
}

/// `struct ifinfomsg` (16 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfInfoMsg {
    pub family: u8,
    /// `ifi_type`: `ARPHRD_*`.
    pub link_type: u16,
    pub index: u32,
    pub flags: u32,
    pub change: u32,
}

impl IfInfoMsg {
    pub const LEN: usize = 16;

    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0] = self.family;
        b[2..4].copy_from_slice(&self.link_type.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.change.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        Some(IfInfoMsg {
            family: *b.first()?,
            link_type: read_u16(b.get(2..)?)?,
            index: read_u32(b.get(4..)?)?,
            flags: read_u32(b.get(8..)?)?,
            change: read_u32(b.get(12..)?)?,
        })
    }
}

/// `struct ifaddrmsg` (8 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAddrMsg {
    pub family: u8,
    pub prefix_len: u8,
    pub flags: u8,
    pub scope: u8,
    pub index: u32,
}

impl IfAddrMsg {
    pub const LEN: usize = 8;

    pub fn encode(&self) -> [u8; 8] {
        let mut b = [
            self.family,
            self.prefix_len,
            self.flags,
            self.scope,
            0,
            0,
            0,
            0,
        ];
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        Some(IfAddrMsg {
            family: *b.first()?,
            prefix_len: *b.get(1)?,
            flags: *b.get(2)?,
            scope: *b.get(3)?,
            index: read_u32(b.get(4..)?)?,
        })
    }
}

/// `struct rtmsg` (12 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMsg {
    pub family: u8,
    pub dst_len: u8,
    pub src_len: u8,
    pub tos: u8,
    pub table: u8,
    pub protocol: u8,
    pub scope: u8,
    /// `rtm_type`: `RTN_*`.
    pub route_type: u8,
    pub flags: u32,
}

impl RtMsg {
    pub const LEN: usize = 12;

    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[..8].copy_from_slice(&[
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.route_type,
        ]);
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Self> {
        let h = b.get(..8)?;
        Some(RtMsg {
            family: h[0],
            dst_len: h[1],
            src_len: h[2],
            tos: h[3],
            table: h[4],
            protocol: h[5],
            scope: h[6],
            route_type: h[7],
            flags: read_u32(b.get(8..)?)?,
        })
    }
}

/// One received message, borrowing from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msg<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    /// Everything after the `nlmsghdr`, up to `nlmsg_len`.
    pub payload: &'a [u8],
}

/// A datagram whose message headers do not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed;

/// The messages of one datagram.
pub fn messages(data: &[u8]) -> Messages<'_> {
    Messages { rest: data }
}

/// Iterator of [`messages`]: yields [`Malformed`] once and stops when a
/// header is cut off or its length is impossible.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<Msg<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let Some(h) = rest.get(..NLMSG_HDRLEN) else {
            return Some(Err(Malformed));
        };
        let len = read_u32(h).unwrap_or(0) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Some(Err(Malformed));
        }
        let msg = Msg {
            msg_type: read_u16(&h[4..]).unwrap_or(0),
            flags: read_u16(&h[6..]).unwrap_or(0),
            seq: read_u32(&h[8..]).unwrap_or(0),
            pid: read_u32(&h[12..]).unwrap_or(0),
            payload: &rest[NLMSG_HDRLEN..len],
        };
        self.rest = rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

/// The attributes in `data`, as (type without the NLA_F_* bits, payload).
/// Stops at the first attribute that does not fit: the kernel never sends
/// one, and a reader must not panic on one.
pub fn attrs(data: &[u8]) -> Attrs<'_> {
    Attrs { rest: data }
}

/// Iterator of [`attrs`].
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = std::mem::take(&mut self.rest);
        let len = usize::from(read_u16(rest)?);
        let ty = read_u16(rest.get(2..)?)?;
        if len < NLA_HDRLEN || len > rest.len() {
            return None;
        }
        self.rest = rest.get(align(len)..).unwrap_or(&[]);
        Some((ty & NLA_TYPE_MASK, &rest[NLA_HDRLEN..len]))
    }
}

pub fn read_u8(p: &[u8]) -> Option<u8> {
    p.first().copied()
}

pub fn read_u16(p: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(p.get(..2)?.try_into().ok()?))
}

pub fn read_u32(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

pub fn read_i32(p: &[u8]) -> Option<i32> {
    Some(i32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

pub fn read_u64(p: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(p.get(..8)?.try_into().ok()?))
}

/// A string attribute: up to the first NUL, invalid UTF-8 replaced.
pub fn read_string(p: &[u8]) -> String {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    String::from_utf8_lossy(&p[..end]).into_owned()
}

/// A 6-byte hardware address (other lengths: `None`).
pub fn read_mac(p: &[u8]) -> Option<[u8; 6]> {
    p.try_into().ok()
}

/// An IPv4 or IPv6 address, by its length.
pub fn read_ip(p: &[u8]) -> Option<IpAddr> {
    match p.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(p).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(p).ok()?))),
        _ => None,
    }
}

/// What an `NLMSG_ERROR` (or the status of an `NLMSG_DONE`) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// 0 for an acknowledgement, else a negative errno.
    pub error: i32,
    /// `NLMSGERR_ATTR_MSG`: the kernel's explanation.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: offset in the request of the attribute at fault.
    pub offset: Option<u32>,
}

impl Ack {
    /// Read an `NLMSG_ERROR`: `int error`, the request's `nlmsghdr`, the
    /// rest of the request unless capped (acks are always capped), then
    /// extended-ack attributes if `NLM_F_ACK_TLVS`.
    pub fn from_error(msg: &Msg<'_>) -> Option<Ack> {
        let error = read_i32(msg.payload)?;
        let request_len = read_u32(msg.payload.get(4..)?)? as usize;
        let echoed = if error == 0 || msg.flags & NLM_F_CAPPED != 0 {
            NLMSG_HDRLEN
        } else {
            align(request_len.max(NLMSG_HDRLEN))
        };
        let tlvs = msg.payload.get(4 + echoed..).unwrap_or(&[]);
        Some(Self::with_tlvs(error, msg.flags, tlvs))
    }

    /// Read the status of an `NLMSG_DONE`: `int error` (absent from very old
    /// kernels: 0), then extended-ack attributes if `NLM_F_ACK_TLVS`.
    pub fn from_done(msg: &Msg<'_>) -> Ack {
        let error = read_i32(msg.payload).unwrap_or(0);
        Self::with_tlvs(error, msg.flags, msg.payload.get(4..).unwrap_or(&[]))
    }

    fn with_tlvs(error: i32, flags: u16, tlvs: &[u8]) -> Ack {
        let mut ack = Ack {
            error,
            message: None,
            offset: None,
        };
        if flags & NLM_F_ACK_TLVS != 0 {
            for (ty, p) in attrs(tlvs) {
                match ty {
                    NLMSGERR_ATTR_MSG => {
                        let s = read_string(p);
                        ack.message = (!s.is_empty()).then_some(s);
                    }
                    NLMSGERR_ATTR_OFFS => ack.offset = read_u32(p),
                    _ => {}
                }
            }
        }
        ack
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use super::*;

    /// An `nlattr` from its parts, the way `<linux/netlink.h>` lays it out.
    fn nla(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(payload);
        v.resize(align(v.len()), 0);
        v
    }

    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = ((16 + payload.len()) as u32).to_ne_bytes().to_vec();
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn alignment() {
        assert_eq!(
            (0..9).map(align).collect::<Vec<_>>(),
            [0, 4, 4, 4, 4, 8, 8, 8, 8]
        );
    }

    #[test]
    fn header_layouts_are_the_kernels() {
        let i = IfInfoMsg {
            family: 7,
            link_type: 0x0201,
            index: 6,
            flags: 1,
            change: 0xffff_ffff,
        };
        let mut want = vec![7, 0];
        want.extend_from_slice(&0x0201u16.to_ne_bytes());
        want.extend_from_slice(&6u32.to_ne_bytes());
        want.extend_from_slice(&1u32.to_ne_bytes());
        want.extend_from_slice(&[0xff; 4]);
        assert_eq!(i.encode().to_vec(), want);
        assert_eq!(IfInfoMsg::decode(&want), Some(i));
        assert_eq!(IfInfoMsg::decode(&want[..15]), None);

        let a = IfAddrMsg {
            family: 2,
            prefix_len: 24,
            flags: 0x80,
            scope: 253,
            index: 6,
        };
        let mut want = vec![2, 24, 0x80, 253];
        want.extend_from_slice(&6u32.to_ne_bytes());
        assert_eq!(a.encode().to_vec(), want);
        assert_eq!(IfAddrMsg::decode(&want), Some(a));
        assert_eq!(IfAddrMsg::decode(&want[..7]), None);

        let r = RtMsg {
            family: 10,
            dst_len: 48,
            src_len: 0,
            tos: 0,
            table: 254,
            protocol: 3,
            scope: 0,
            route_type: 1,
            flags: 0x200,
        };
        let mut want = vec![10, 48, 0, 0, 254, 3, 0, 1];
        want.extend_from_slice(&0x200u32.to_ne_bytes());
        assert_eq!(r.encode().to_vec(), want);
        assert_eq!(RtMsg::decode(&want), Some(r));
        assert_eq!(RtMsg::decode(&want[..11]), None);
    }

    #[test]
    fn request_pads_every_attribute_and_counts_the_padding() {
        let mut r = Request::new(RTM_NEWLINK, NLM_F_ACK);
        r.push(&IfInfoMsg::default().encode());
        r.attr_u8(1, 0xaa);
        r.attr_u16(2, 0xbbcc);
        r.attr(3, b"hello");
        r.attr_cstr(4, "abc");
        r.attr(5, &[]);
        r.set_seq(0x01020304);
        let mut payload = [0u8; 16].to_vec();
        payload.extend(nla(1, &[0xaa]));
        payload.extend(nla(2, &0xbbccu16.to_ne_bytes()));
        payload.extend(nla(3, b"hello"));
        payload.extend(nla(4, b"abc\0"));
        payload.extend(nla(5, &[]));
        let want = nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 0x01020304, &payload);
        assert_eq!(r.bytes(), &want[..]);
        // "hello" is 9 bytes of attribute, 12 on the wire.
        assert_eq!(&want[16 + 16 + 8 + 8..][..4], &[9, 0, 3, 0]);
        assert_eq!(r.bytes().len() % 4, 0);
        assert_eq!(r.msg_type(), RTM_NEWLINK);
        assert_eq!(r.flags(), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(r.seq(), 0x01020304);
    }

    #[test]
    fn nests_cover_their_contents() {
        let mut r = Request::new(RTM_NEWLINK, 0);
        let outer = r.nest(IFLA_LINKINFO);
        r.attr(IFLA_INFO_KIND, b"macvtap");
        let inner = r.nest(IFLA_INFO_DATA | NLA_F_NESTED);
        r.attr_u32(IFLA_MACVLAN_MODE, 4);
        r.end(inner);
        r.end(outer);
        r.attr_u32(IFLA_MTU, 1500);
        let inner = nla(
            IFLA_INFO_DATA | NLA_F_NESTED,
            &nla(IFLA_MACVLAN_MODE, &4u32.to_ne_bytes()),
        );
        let mut linkinfo = nla(IFLA_INFO_KIND, b"macvtap");
        linkinfo.extend(inner);
        let mut payload = nla(IFLA_LINKINFO, &linkinfo);
        payload.extend(nla(IFLA_MTU, &1500u32.to_ne_bytes()));
        assert_eq!(
            r.bytes(),
            &nlmsg(RTM_NEWLINK, NLM_F_REQUEST, 0, &payload)[..]
        );

        // And the reader walks it back, with the flag bits masked off.
        let got: Vec<_> = attrs(&payload).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, IFLA_LINKINFO);
        assert_eq!(read_u32(got[1].1), Some(1500));
        let info: Vec<_> = attrs(got[0].1).collect();
        assert_eq!(info[0], (IFLA_INFO_KIND, &b"macvtap"[..]));
        assert_eq!(info[1].0, IFLA_INFO_DATA);
        assert_eq!(
            attrs(info[1].1).next(),
            Some((IFLA_MACVLAN_MODE, &4u32.to_ne_bytes()[..]))
        );
    }

    #[test]
    fn messages_split_a_datagram() {
        let mut d = nlmsg(RTM_NEWLINK, NLM_F_MULTI, 7, &[1, 2, 3]);
        d.resize(align(d.len()), 0);
        d.extend(nlmsg(NLMSG_DONE, NLM_F_MULTI, 7, &0i32.to_ne_bytes()));
        let got: Vec<_> = messages(&d).collect();
        assert_eq!(got.len(), 2);
        let first = got[0].unwrap();
        assert_eq!(
            (first.msg_type, first.flags, first.seq, first.payload),
            (RTM_NEWLINK, NLM_F_MULTI, 7, &[1u8, 2, 3][..])
        );
        assert_eq!(got[1].unwrap().msg_type, NLMSG_DONE);

        // Cut anywhere inside a header or a payload: an error, never a panic.
        for cut in 1..d.len() {
            let v: Vec<_> = messages(&d[..cut]).collect();
            if cut < 19 || (cut > 20 && cut < 40) {
                assert_eq!(v.last(), Some(&Err(Malformed)), "cut {cut}");
            }
        }
        // A length below the header's own.
        let mut bad = d.clone();
        bad[..4].copy_from_slice(&3u32.to_ne_bytes());
        assert_eq!(messages(&bad).next(), Some(Err(Malformed)));
    }

    #[test]
    fn attrs_stop_at_garbage() {
        let mut d = nla(1, &[9; 5]);
        d.extend(nla(2, &[]));
        d.extend([200, 0, 3, 0, 1, 2]); // claims 200 bytes
        let got: Vec<_> = attrs(&d).collect();
        assert_eq!(got, vec![(1, &[9u8; 5][..]), (2, &[][..])]);
        assert_eq!(attrs(&[3, 0, 1, 0]).count(), 0); // len 3 < header
        assert_eq!(attrs(&[4, 0]).count(), 0);
        // The last attribute's padding may be missing.
        assert_eq!(
            attrs(&[5, 0, 1, 0, 7]).collect::<Vec<_>>(),
            vec![(1, &[7u8][..])]
        );
    }

    #[test]
    fn readers_check_lengths() {
        assert_eq!(read_u32(&[1, 0, 0]), None);
        assert_eq!(read_u64(&[0; 7]), None);
        assert_eq!(read_u8(&[]), None);
        assert_eq!(read_string(b"eth0\0\0\0"), "eth0");
        assert_eq!(read_string(b"no nul"), "no nul");
        assert_eq!(read_string(b"\xff\0"), "\u{fffd}");
        assert_eq!(read_mac(&[1, 2, 3, 4, 5]), None);
        assert_eq!(read_ip(&[10, 0, 0, 1]), Some("10.0.0.1".parse().unwrap()));
        assert_eq!(read_ip(&[0; 5]), None);
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        let IpAddr::V6(raw) = v6 else { unreachable!() };
        assert_eq!(read_ip(&raw.octets()), Some(v6));
    }

    #[test]
    fn acks_and_errors() {
        // An ack: error 0 and the request's header, capped.
        let mut p = 0i32.to_ne_bytes().to_vec();
        p.extend(nlmsg(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 5, &[]));
        let m = Msg {
            msg_type: NLMSG_ERROR,
            flags: NLM_F_CAPPED,
            seq: 5,
            pid: 0,
            payload: &p,
        };
        assert_eq!(
            Ack::from_error(&m),
            Some(Ack {
                error: 0,
                message: None,
                offset: None
            })
        );
        // An error with the whole request echoed (no NETLINK_CAP_ACK), then
        // extended-ack attributes.
        let request = nlmsg(RTM_NEWLINK, NLM_F_REQUEST, 5, &[0; 20]);
        let mut p = (-22i32).to_ne_bytes().to_vec();
        p.extend(&request);
        p.extend(nla(NLMSGERR_ATTR_MSG, b"mtu too big\0"));
        p.extend(nla(NLMSGERR_ATTR_OFFS, &32u32.to_ne_bytes()));
        let m = Msg {
            flags: NLM_F_ACK_TLVS,
            payload: &p,
            ..m
        };
        let ack = Ack::from_error(&m).unwrap();
        assert_eq!(ack.error, -22);
        assert_eq!(ack.message.as_deref(), Some("mtu too big"));
        assert_eq!(ack.offset, Some(32));
        // Without NLM_F_ACK_TLVS the same bytes carry no message.
        let m2 = Msg { flags: 0, ..m };
        assert_eq!(Ack::from_error(&m2).unwrap().message, None);
        // Too short to be an error at all.
        let m3 = Msg {
            payload: &p[..6],
            ..m
        };
        assert_eq!(Ack::from_error(&m3), None);
        // A DONE with nothing in it (old kernels) is a success.
        let done = Msg {
            msg_type: NLMSG_DONE,
            payload: &[],
            flags: NLM_F_MULTI,
            ..m
        };
        assert_eq!(Ack::from_done(&done).error, 0);
    }
}
