#!/usr/bin/env python3
"""bench/ganeti_ref.py: the seed design's way, for vmtap's benchmark.

Opens TAP devices the way Ganeti's hv_kvm netdev.OpenTap does it, with
os.open + fcntl.ioctl: per queue os.open("/dev/net/tun", O_RDWR) (Python's
fds are close-on-exec, PEP 446), TUNGETFEATURES on every fd (once for the
vnet_hdr probe, once more for the multi-queue probe when queues > 1),
TUNSETIFF with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR plus IFF_MULTI_QUEUE (queues > 1)
or IFF_ONE_QUEUE (one queue), the name taken from the first TUNSETIFF's answer.
Ganeti does no TUNGETIFF. Closing is os.close per fd, one after the other.

Speaks the line protocol of bench/tapref.c on stdin/stdout (open N, close,
openmany N, closeseq, quit); times with time.perf_counter_ns() inside Python.
"""
import fcntl
import os
import struct
import sys
import time

TUNSETIFF = 0x400454CA
TUNGETFEATURES = 0x800454CF
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_ONE_QUEUE = 0x2000
IFF_VNET_HDR = 0x4000
IFF_MULTI_QUEUE = 0x0100


def get_features(fd):
    try:
        buf = fcntl.ioctl(fd, TUNGETFEATURES, struct.pack("I", 0))
    except OSError:
        return None
    return struct.unpack("I", buf)[0]


def open_tap(queues):
    """Ganeti's OpenTap(name="", {"vnet_hdr": True, "mq": (True, queues)})."""
    fds = []
    name = b""
    res = None
    try:
        for _ in range(queues):
            fd = os.open("/dev/net/tun", os.O_RDWR)
            fds.append(fd)
            flags = IFF_TAP | IFF_NO_PI
            feats = get_features(fd)
            if feats is not None and feats & IFF_VNET_HDR:
                flags |= IFF_VNET_HDR
            if queues > 1 and (get_features(fd) or 0) & IFF_MULTI_QUEUE:
                flags |= IFF_MULTI_QUEUE
            else:
                flags |= IFF_ONE_QUEUE
            res = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sh", name, flags))
            if not name:
                name = struct.unpack("16sh", res)[0].strip(b"\x00")
    except OSError:
        # Ganeti leaks these; the benchmark must not.
        for fd in fds:
            os.close(fd)
        raise
    return name, fds


def main():
    devices = []

    def close_all():
        for fds in devices:
            for fd in fds:
                os.close(fd)
        devices.clear()

    out = sys.stdout
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        cmd = parts[0]
        n = int(parts[1]) if len(parts) > 1 else 0
        try:
            if cmd == "quit":
                break
            elif cmd == "open":
                close_all()
                t0 = time.perf_counter_ns()
                _, fds = open_tap(n)
                t1 = time.perf_counter_ns()
                devices.append(fds)
                out.write("%d\n" % (t1 - t0))
            elif cmd in ("close", "closeseq"):
                t0 = time.perf_counter_ns()
                close_all()
                t1 = time.perf_counter_ns()
                out.write("%d\n" % (t1 - t0))
            elif cmd == "openmany":
                close_all()
                for _ in range(n):
                    devices.append(open_tap(1)[1])
                out.write("ok\n")
            else:
                out.write("error unknown command %s\n" % cmd)
        except OSError as e:
            out.write("error %s\n" % e)
        out.flush()
    close_all()


if __name__ == "__main__":
    main()
