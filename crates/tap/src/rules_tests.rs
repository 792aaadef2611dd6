//! The rules' unit tests (rules.rs stays a list of rules).

use super::*;

fn bad_name(name: &str) {
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
fn messages_quote_a_capped_prefix_of_huge_names() {
    let huge = "\u{1}".repeat(1 << 20);
    let e = parse_name(&huge).unwrap_err().to_string();
    assert!(e.len() < 600, "{} bytes", e.len());
    assert!(e.contains("... (1048576 bytes)"), "{e}");
    assert_eq!(quoted("vm0"), "\"vm0\"");
    let e = check_dup_fds(&[0; MAX_DUP_FDS + 1]).unwrap_err();
    assert_eq!(e.code(), "ERR_OUT_OF_RANGE");
}

#[test]
fn refuses_what_the_kernel_would_mangle_or_reject() {
    bad_name("abcdefghijklmnop"); // 16 bytes: the kernel would truncate
    bad_name("a/b");
    bad_name("a:b");
    bad_name("a b");
    bad_name("a\tb");
    bad_name("a\nb");
    bad_name("a\0b");
    bad_name("é");
    bad_name("a\u{7f}");
    bad_name("vm%s");
    bad_name("vm%");
    bad_name("%d%d");
    bad_name("%%d");
    bad_name(".");
    bad_name("..");
}

fn code(r: Result<()>) -> &'static str {
    r.map(|_| "ok").unwrap_or_else(|e| e.code())
}

#[test]
fn offload_bits_and_pairings() {
    const VAL: &str = "ERR_INVALID_ARG_VALUE";
    assert_eq!(code(check_offloads(0)), "ok");
    assert_eq!(code(check_offloads(TUN_F_CSUM)), "ok");
    assert_eq!(code(check_offloads(ALL_OFFLOADS)), "ok");
    assert_eq!(
        code(check_offloads(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN)),
        "ok"
    );
    assert_eq!(
        code(check_offloads(TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN)),
        "ok"
    );
    assert_eq!(code(check_offloads(0x80)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_offloads(TUN_F_TSO4)), VAL, "no csum");
    assert_eq!(code(check_offloads(TUN_F_CSUM | TUN_F_TSO_ECN)), VAL);
    assert_eq!(code(check_offloads(TUN_F_CSUM | TUN_F_USO4)), VAL);
    assert_eq!(code(check_offloads(TUN_F_CSUM | TUN_F_USO6)), VAL);
    let e = check_offloads(TUN_F_CSUM | TUN_F_TSO_ECN).unwrap_err();
    assert!(e.to_string().contains("ecn"), "{e}");
    let e = check_offloads(TUN_F_CSUM | TUN_F_USO4).unwrap_err();
    assert!(e.to_string().contains("uso4 and uso6"), "{e}");
}

#[test]
fn numeric_limits() {
    assert_eq!(code(check_queues(0)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_queues(1)), "ok");
    assert_eq!(code(check_queues(MAX_QUEUES)), "ok");
    assert_eq!(code(check_queues(MAX_QUEUES + 1)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_mtu(MIN_MTU - 1)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_mtu(MAX_MTU)), "ok");
    assert_eq!(code(check_mtu(MAX_MTU + 1)), "ERR_OUT_OF_RANGE");
    for s in VNET_HDR_SIZES {
        assert_eq!(code(check_vnet_hdr_size(s)), "ok");
    }
    assert_eq!(code(check_vnet_hdr_size(11)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_id("owner", MAX_ID)), "ok");
    assert_eq!(code(check_id("owner", u32::MAX)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_queue_index(3, 4, true)), "ok");
    assert_eq!(code(check_queue_index(4, 4, true)), "ERR_OUT_OF_RANGE");
    assert_eq!(
        code(check_queue_index(0, 1, false)),
        "ERR_INVALID_ARG_VALUE"
    );
    assert_eq!(code(check_fd("fd", -1)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_recv(0, 0)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_recv(MAX_RECV_BYTES + 1, 0)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_recv(1, SCM_MAX_FD + 1)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_close_threads(0)), "ERR_OUT_OF_RANGE");
    assert_eq!(
        code(check_close_threads(MAX_CLOSE_THREADS + 1)),
        "ERR_OUT_OF_RANGE"
    );
    assert!(timeout_from_ms(-1).is_err());
    assert_eq!(timeout_from_ms(5).unwrap(), Duration::from_millis(5));
}

/// What check_open says about the default options changed by `f`.
fn open_with(f: impl FnOnce(&mut OpenOptions)) -> &'static str {
    let mut o = OpenOptions::default();
    f(&mut o);
    check_open(&o).map(|_| "ok").unwrap_or_else(|e| e.code())
}

#[test]
fn tun_takes_no_link_layer_options_and_frames_have_bounds() {
    const VAL: &str = "ERR_INVALID_ARG_VALUE";
    const RANGE: &str = "ERR_OUT_OF_RANGE";
    let tun = |f: fn(&mut OpenOptions)| {
        open_with(|o| {
            o.mode = Mode::Tun;
            f(o);
        })
    };
    assert_eq!(tun(|_| {}), "ok", "vnetHdr auto means none");
    assert_eq!(tun(|o| o.vnet_hdr = Tristate::On), VAL);
    assert_eq!(tun(|o| o.vnet_hdr_size = Some(12)), VAL);
    assert_eq!(tun(|o| o.offloads = Some(TUN_F_CSUM)), VAL);
    assert_eq!(tun(|o| o.vhost = Tristate::Auto), VAL);
    assert_eq!(tun(|o| o.mac = Some([2, 0, 0, 0, 0, 1])), VAL);
    assert_eq!(tun(|o| o.bridge = Some("br0".into())), VAL);
    assert_eq!(tun(|o| o.queues = 4), "ok");
    let frame = |m, len, mtu, gso| code(check_frame(m, len, mtu, gso));
    assert_eq!(frame(Mode::Tap, 13, 1500, false), RANGE);
    assert_eq!(frame(Mode::Tap, 14, 1500, false), "ok");
    assert_eq!(frame(Mode::Tap, 1518, 1500, false), "ok");
    assert_eq!(frame(Mode::Tap, 1519, 1500, false), RANGE);
    assert_eq!(frame(Mode::Tap, 65000, 1500, true), "ok");
    assert_eq!(frame(Mode::Tap, MAX_FRAME_BYTES + 1, 65521, true), RANGE);
    assert_eq!(frame(Mode::Tun, 19, 1500, false), RANGE);
    assert_eq!(frame(Mode::Tun, 1500, 1500, false), "ok");
    assert_eq!(frame(Mode::Tun, 1501, 1500, false), RANGE);
    let e = check_frame(Mode::Tap, 1600, 1500, false).unwrap_err();
    assert!(e.to_string().contains("1518"), "{e}");
    assert_eq!(code(check_queue(1, 2)), "ok");
    assert_eq!(code(check_queue(2, 2)), RANGE);
}

#[test]
fn open_cross_field_rules() {
    const VAL: &str = "ERR_INVALID_ARG_VALUE";
    const RANGE: &str = "ERR_OUT_OF_RANGE";
    assert_eq!(open_with(|_| {}), "ok");
    let no_vnet_hdr = |size: Option<i32>, offloads: Option<u32>| {
        open_with(|o| {
            o.vnet_hdr = Tristate::Off;
            o.vnet_hdr_size = size;
            o.offloads = offloads;
        })
    };
    assert_eq!(no_vnet_hdr(Some(12), None), VAL, "vnetHdrSize, vnetHdr off");
    assert_eq!(
        no_vnet_hdr(None, Some(TUN_F_CSUM)),
        VAL,
        "offloads, vnetHdr off"
    );
    assert_eq!(no_vnet_hdr(None, Some(0)), "ok", "no offloads, vnetHdr off");
    let ecn = Some(TUN_F_CSUM | TUN_F_TSO_ECN);
    assert_eq!(open_with(|o| o.offloads = ecn), VAL, "ecn alone");
    let unique = |name: &str| {
        open_with(|o| {
            o.name = name.into();
            o.unique_name = true;
        })
    };
    assert_eq!(unique("vm0"), VAL, "uniqueName with an exact name");
    assert_eq!(unique(""), "ok");
    assert_eq!(unique("vm%d"), "ok");
    assert_eq!(open_with(|o| o.owner = Some(u32::MAX)), RANGE);
    assert_eq!(open_with(|o| o.group = Some(u32::MAX)), RANGE);
    assert_eq!(open_with(|o| o.queues = 0), RANGE);
    assert_eq!(open_with(|o| o.bridge = Some("br%d".into())), VAL);
}
