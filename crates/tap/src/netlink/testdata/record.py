#!/usr/bin/env python3
# How the *.bin replies next to this file were recorded (Linux 6.18), for
# netlink/tests.rs. Each file is the reply datagrams of one request, concatenated.
# Run as root; it only touches the namespace it is given:
#
#   N=vmtap-nl-rec; ip netns add $N
#   ip -n $N link add vb0 type veth peer name vb1
#   ip -n $N link add br0 type bridge
#   ip -n $N link add link vb0 name mv0 type macvtap mode bridge
#   ip -n $N tuntap add dev t0 mode tap
#   ip -n $N tuntap add dev t1 mode tap multi_queue user 4242 group 4243 vnet_hdr
#   ip -n $N link set t0 master br0
#   ip -n $N link set t0 alias "hello vm"
#   ip -n $N link set t0 mtu 9000 address 02:11:22:33:44:55 txqueuelen 2000
#   for d in lo vb0 vb1 br0 t0; do ip -n $N link set $d up; done
#   ip -n $N addr add 10.1.2.3/24 dev br0
#   ip -n $N addr add 2001:db8::5/64 dev br0 nodad
#   ip -n $N route add 10.9.0.0/16 dev vb0 scope link
#   ip -n $N route add 2001:db8:9::/48 dev vb0
#   ip netns exec $N bridge link set dev t0 isolated on learning off hairpin on
#   sleep 2  # the veths' IPv6 link-local addresses finish DAD (routes.bin lists them)
#   ip netns exec $N python3 record.py OUTDIR
#   ip netns del $N
#
# The requests of testdata/iproute2.rs were recorded in the same kind of namespace with
#   strace -e trace=sendmsg,sendto -xx -s 65536 ip -n $N link set dev t0 alias hello  (etc.)
import fcntl, os, socket, struct, sys

OUT = sys.argv[1]
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK = 270, 10, 11, 12
REQ, ACK, ECHO, DUMP, EXCL, CREATE = 1, 4, 8, 0x300, 0x200, 0x400
NLMSG_ERROR, NLMSG_DONE = 2, 3


def sock(ext=True, strict=True, cap=False):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    for opt, on in ((NETLINK_EXT_ACK, ext), (NETLINK_GET_STRICT_CHK, strict), (NETLINK_CAP_ACK, cap)):
        if on:
            s.setsockopt(SOL_NETLINK, opt, 1)
    return s


def nla(ty, data):
    n = 4 + len(data)
    return struct.pack('=HH', n, ty) + data + b'\0' * (-n % 4)


def msg(ty, flags, payload):
    return struct.pack('=IHHII', 16 + len(payload), ty, flags, 1, 0) + payload


def ifinfo(family=0, index=0):
    return struct.pack('=BxHiII', family, 0, index, 0, 0)


def exchange(s, request):
    """Send; collect datagrams until the request is answered."""
    flags = struct.unpack_from('=H', request, 6)[0]
    s.send(request)
    out = b''
    while True:
        d = s.recv(65536)
        out += d
        off = 0
        while off + 16 <= len(d):
            length, ty, f = struct.unpack_from('=IHH', d, off)
            if ty in (NLMSG_ERROR, NLMSG_DONE):
                return out
            if not flags & (ACK | DUMP):
                return out  # a get: one message
            off += (length + 3) & ~3


def save(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
    print(name, len(data))


index = socket.if_nametoindex
# A single-queue tap that exists while this script holds it (not persistent).
tun = os.open('/dev/net/tun', os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack('16sH22x', b't2', 0x0002 | 0x1000))  # TUNSETIFF IFF_TAP|IFF_NO_PI
s = sock()
save('links.bin', exchange(s, msg(18, REQ | DUMP, ifinfo())))                      # RTM_GETLINK
save('bridge.bin', exchange(s, msg(18, REQ | DUMP, ifinfo(family=7))))             # AF_BRIDGE
save('addrs.bin', exchange(s, msg(22, REQ | DUMP, bytes(8))))                       # RTM_GETADDR
save('routes.bin', exchange(s, msg(26, REQ | DUMP, bytes(12))))                     # RTM_GETROUTE
save('getlink_t1.bin', exchange(s, msg(18, REQ, ifinfo(index=index('t1')))))
too_big = msg(16, REQ | ACK, ifinfo(index=index('t0')) + nla(4, struct.pack('=I', 70000)))  # IFLA_MTU
save('err_extack.bin', exchange(s, too_big))
save('err_plain.bin', exchange(sock(ext=False, strict=False), too_big))
save('err_capped.bin', exchange(sock(cap=True), too_big))
save('err_nodev.bin', exchange(s, msg(18, REQ, ifinfo(index=9999))))
save('ack.bin', exchange(s, msg(16, REQ | ACK, ifinfo(index=index('t0')) + nla(20, b'hello vm'))))
save('err_strict_dump.bin', exchange(s, msg(18, REQ | DUMP, ifinfo(index=1))))
linkinfo = nla(18, nla(1, b'macvtap\0') + nla(2, nla(1, struct.pack('=I', 4))))
create = ifinfo() + nla(5, struct.pack('=I', index('vb0'))) + nla(3, b'mv9\0') + linkinfo
save('newlink_echo.bin', exchange(s, msg(16, REQ | ACK | ECHO | CREATE | EXCL, create)))
save('dellink_ack.bin', exchange(s, msg(17, REQ | ACK, ifinfo(index=index('mv9')))))
os.close(tun)
