//! The rules' unit tests (rules.rs stays a list of rules).

use super::*;

#[test]
fn tags() {
    for good in [
        "a",
        "ci",
        "vm-1.nic0",
        "tenant/vm_7:net@host",
        &"x".repeat(64),
    ] {
        assert!(check_tag(good).is_ok(), "{good:?}");
    }
    for bad in [
        "",
        &"x".repeat(65),
        "a b",
        "a=b",
        "a,b",
        "a;b",
        "é",
        "a\0",
        "a\n",
    ] {
        assert_eq!(
            check_tag(bad).map(|_| "ok").unwrap_or_else(|e| e.code()),
            "ERR_INVALID_ARG_VALUE",
            "{bad:?}"
        );
    }
}

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

/// The code of a parse: "ok addr/len" or the error code.
fn cidr(f: fn(&'static str, &str) -> Result<IpCidr>, s: &str) -> String {
    match f("x", s) {
        Ok(c) => format!("ok {c}"),
        Err(e) => e.code().to_owned(),
    }
}

/// The table limits.spec.ts has too: TypeScript's lib/net.ts must agree.
pub(crate) const CIDR_CASES: &[(&str, &str, &str)] = &[
    // input, as an address, as a route
    ("192.0.2.1/32", "ok 192.0.2.1/32", "ok 192.0.2.1/32"),
    ("192.0.2.1", "ok 192.0.2.1/32", "ok 192.0.2.1/32"),
    ("192.0.2.1/24", "ok 192.0.2.1/24", "ERR_INVALID_ARG_VALUE"),
    ("192.0.2.0/24", "ok 192.0.2.0/24", "ok 192.0.2.0/24"),
    ("0.0.0.0/0", "ERR_INVALID_ARG_VALUE", "ok 0.0.0.0/0"),
    ("10.0.0.1/0", "ok 10.0.0.1/0", "ERR_INVALID_ARG_VALUE"),
    ("192.0.2.1/33", "ERR_OUT_OF_RANGE", "ERR_OUT_OF_RANGE"),
    ("192.0.2.1/999", "ERR_OUT_OF_RANGE", "ERR_OUT_OF_RANGE"),
    (
        "192.0.2.1/1000",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2.1/032",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2.1/",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2.1/+3",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2.1/ 3",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2.1/3/4",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.02.1/32",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "192.0.2/24",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "256.0.2.1",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        " 192.0.2.1",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    ("", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_VALUE"),
    ("/32", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_VALUE"),
    ("224.0.0.1/32", "ERR_INVALID_ARG_VALUE", "ok 224.0.0.1/32"),
    (
        "255.255.255.255",
        "ERR_INVALID_ARG_VALUE",
        "ok 255.255.255.255/32",
    ),
    ("127.0.0.2/8", "ok 127.0.0.2/8", "ERR_INVALID_ARG_VALUE"),
    (
        "2001:db8::1/64",
        "ok 2001:db8::1/64",
        "ERR_INVALID_ARG_VALUE",
    ),
    ("2001:db8::/64", "ok 2001:db8::/64", "ok 2001:db8::/64"),
    ("2001:DB8::2", "ok 2001:db8::2/128", "ok 2001:db8::2/128"),
    (
        "2001:db8::1/128",
        "ok 2001:db8::1/128",
        "ok 2001:db8::1/128",
    ),
    ("2001:db8::1/129", "ERR_OUT_OF_RANGE", "ERR_OUT_OF_RANGE"),
    ("::/0", "ERR_INVALID_ARG_VALUE", "ok ::/0"),
    ("::1", "ERR_INVALID_ARG_VALUE", "ok ::1/128"),
    ("ff02::1", "ERR_INVALID_ARG_VALUE", "ok ff02::1/128"),
    ("fe80::1/64", "ok fe80::1/64", "ERR_INVALID_ARG_VALUE"),
    (
        "fe80::1%eth0",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "[2001:db8::1]",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "::ffff:192.0.2.1",
        "ok ::ffff:192.0.2.1/128",
        "ok ::ffff:192.0.2.1/128",
    ),
    (
        "::ffff:192.0.02.1",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    (
        "1:2:3:4:5:6:7::",
        "ok 1:2:3:4:5:6:7:0/128",
        "ok 1:2:3:4:5:6:7:0/128",
    ),
    (
        "1:2:3:4:5:6:7:8:9",
        "ERR_INVALID_ARG_VALUE",
        "ERR_INVALID_ARG_VALUE",
    ),
    ("1::2::3", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_VALUE"),
    ("12345::", "ERR_INVALID_ARG_VALUE", "ERR_INVALID_ARG_VALUE"),
    (
        "2001:db8:0:0:1:0:0:1/64",
        "ok 2001:db8::1:0:0:1/64",
        "ERR_INVALID_ARG_VALUE",
    ),
    ("2001:db8::/32", "ok 2001:db8::/32", "ok 2001:db8::/32"),
    (
        "2001:db8:8000::/33",
        "ok 2001:db8:8000::/33",
        "ok 2001:db8:8000::/33",
    ),
    (
        "2001:db8:8000::/32",
        "ok 2001:db8:8000::/32",
        "ERR_INVALID_ARG_VALUE",
    ),
];

#[test]
fn cidr_addresses_and_routes() {
    for (input, address, route) in CIDR_CASES {
        assert_eq!(cidr(parse_address, input), *address, "address {input:?}");
        assert_eq!(cidr(parse_route, input), *route, "route {input:?}");
    }
    let e = parse_route("routes", "192.0.2.5/24").unwrap_err();
    assert!(e.to_string().contains("the network is 192.0.2.0/24"), "{e}");
    let e = parse_address("addresses", "192.0.2.1/33").unwrap_err();
    assert!(e.to_string().contains("must be 0 to 32, got 33"), "{e}");
    let c = IpCidr::new("2001:db8::1".parse().unwrap(), 200);
    assert_eq!(
        check_address("cidr", &c).unwrap_err().code(),
        "ERR_OUT_OF_RANGE"
    );
    assert_eq!(c.network(), "2001:db8::1".parse::<IpAddr>().unwrap());
}

#[test]
fn address_and_route_lists() {
    let a = |s: &str| parse_address("x", s).unwrap();
    assert_eq!(
        code(check_addresses(&[a("192.0.2.1/32"), a("2001:db8::1")])),
        "ok"
    );
    let e = check_addresses(&[a("192.0.2.1/32"), a("192.0.2.1/24")]).unwrap_err();
    assert_eq!(e.code(), "ERR_INVALID_ARG_VALUE");
    assert!(
        e.to_string()
            .contains("addresses[1] (192.0.2.1/24) repeats addresses[0]"),
        "{e}"
    );
    let many: Vec<IpCidr> = (0..=MAX_ADDRESSES as u32)
        .map(|i| IpCidr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0001 + i)), 32))
        .collect();
    assert_eq!(code(check_addresses(&many[..MAX_ADDRESSES])), "ok");
    assert_eq!(code(check_addresses(&many)), "ERR_OUT_OF_RANGE");
    assert_eq!(code(check_routes(&many[..MAX_ROUTES])), "ok");
    assert_eq!(code(check_routes(&many)), "ERR_OUT_OF_RANGE");
    let r = |s: &str| parse_route("x", s).unwrap();
    assert_eq!(
        code(check_routes(&[r("192.0.2.0/24"), r("192.0.2.0/25")])),
        "ok"
    );
    assert_eq!(
        code(check_routes(&[r("192.0.2.0/24"), r("192.0.2.0/24")])),
        "ERR_INVALID_ARG_VALUE"
    );
    let host_bits = IpCidr::new("192.0.2.1".parse().unwrap(), 24);
    assert_eq!(code(check_routes(&[host_bits])), "ERR_INVALID_ARG_VALUE");
    assert_eq!(code(check_tx_queue_len(MAX_TX_QUEUE_LEN)), "ok");
    assert_eq!(
        code(check_tx_queue_len(MAX_TX_QUEUE_LEN + 1)),
        "ERR_OUT_OF_RANGE"
    );
}

/// What check_open says about the default options changed by `f`.
fn open_with(f: impl FnOnce(&mut OpenOptions)) -> &'static str {
    let mut o = OpenOptions::default();
    f(&mut o);
    check_open(&o).map(|_| "ok").unwrap_or_else(|e| e.code())
}

#[test]
fn macvtap_rules() {
    const VAL: &str = "ERR_INVALID_ARG_VALUE";
    const RANGE: &str = "ERR_OUT_OF_RANGE";
    let with = |f: &dyn Fn(&mut MacvtapOptions)| {
        let mut o = MacvtapOptions {
            link: "eth0".into(),
            ..MacvtapOptions::default()
        };
        f(&mut o);
        check_macvtap(&o).map(|_| "ok").unwrap_or_else(|e| e.code())
    };
    assert_eq!(with(&|_| {}), "ok");
    assert_eq!(with(&|o| o.link = String::new()), VAL, "no link");
    assert_eq!(
        with(&|o| o.link = "eth%d".into()),
        VAL,
        "a template as link"
    );
    assert_eq!(with(&|o| o.link = "a/b".into()), VAL);
    assert_eq!(with(&|o| o.link = "abcdefghijklmnop".into()), VAL);
    assert_eq!(with(&|o| o.name = "mv%d".into()), "ok");
    assert_eq!(with(&|o| o.name = "mv0".into()), "ok");
    assert_eq!(with(&|o| o.name = "eth0".into()), VAL, "the lower's name");
    assert_eq!(with(&|o| o.name = "a b".into()), VAL);
    assert_eq!(with(&|o| o.queues = 0), RANGE);
    assert_eq!(with(&|o| o.queues = MAX_QUEUES), "ok");
    assert_eq!(with(&|o| o.queues = MAX_QUEUES + 1), RANGE);
    assert_eq!(with(&|o| o.mtu = Some(67)), RANGE);
    assert_eq!(with(&|o| o.mac = Some([1, 0, 0, 0, 0, 1])), VAL);
    assert_eq!(with(&|o| o.tag = Some("a b".into())), VAL);
    assert_eq!(with(&|o| o.mode = MacvlanMode::Source), VAL);
    for (name, mode) in [
        ("bridge", MacvlanMode::Bridge),
        ("vepa", MacvlanMode::Vepa),
        ("private", MacvlanMode::Private),
        ("passthru", MacvlanMode::Passthru),
    ] {
        assert_eq!(parse_macvtap_mode(name).unwrap(), mode);
        assert_eq!(mode.name(), name);
    }
    for bad in ["source", "Bridge", "", "bridge "] {
        assert_eq!(parse_macvtap_mode(bad).unwrap_err().code(), VAL, "{bad:?}");
    }
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
    let route = || vec![parse_route("r", "192.0.2.2/32").unwrap()];
    assert_eq!(open_with(|o| o.routes = route()), VAL, "routes without up");
    assert_eq!(
        open_with(|o| {
            o.routes = route();
            o.up = true;
        }),
        "ok"
    );
    let flags = Some(crate::BridgePortFlags::default());
    assert_eq!(
        open_with(|o| o.bridge_port = flags),
        VAL,
        "bridgePort without bridge"
    );
    assert_eq!(
        open_with(|o| {
            o.bridge_port = flags;
            o.bridge = Some("br0".into());
        }),
        "ok"
    );
    assert_eq!(open_with(|o| o.tx_queue_len = Some(u32::MAX)), RANGE);
    let twice = vec![parse_address("a", "192.0.2.1").unwrap(); 2];
    assert_eq!(open_with(|o| o.addresses = twice), VAL);
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
fn open_batches() {
    assert!(check_open_batch(0).is_ok());
    assert!(check_open_batch(MAX_OPEN_BATCH).is_ok());
    let e = check_open_batch(MAX_OPEN_BATCH + 1).unwrap_err();
    assert_eq!(e.code(), "ERR_OUT_OF_RANGE");
    assert_eq!(
        e.to_string(),
        format!(
            "list must hold at most {MAX_OPEN_BATCH} opens, got {}",
            MAX_OPEN_BATCH + 1
        )
    );
}
