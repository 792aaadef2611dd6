#!/bin/sh
# /init of the vmtap end-to-end guest (busybox-static + the virtio-net modules).
#
# Driven by the kernel command line, so one initramfs serves every case:
#   vmtap.mode=default      default: the flow below; hotplug: see "hotplug mode"
#   vmtap.ip=10.77.0.2/24   eth0's address
#   vmtap.host=10.77.0.1    the host side of the tap
#   vmtap.pings=3           guest -> host pings
#   vmtap.rxport=5001       TCP port the host sends a payload on (0: skip)
#   vmtap.txport=5002       TCP port the guest sends to (0: skip)
#   vmtap.txbytes=8388608   how much the guest sends (from /dev/urandom)
#   vmtap.gw=192.0.2.1      routed mode: the gateway, reached on eth0 whatever
#                           vmtap.ip's prefix (an on-link host route), and the
#                           default route through it (vmtap.host may then be
#                           anywhere the host routes to)
#   vmtap.onlink=ADDR       also ping ADDR as if it were on eth0's link (a host
#                           route without gateway): only a host that answers
#                           ARP for it (proxy ARP) makes it reachable
# hotplug mode only:
#   vmtap.ip1=10.77.3.2/24  the hot-plugged eth1's address
#   vmtap.host1=10.77.3.1   the host side of eth1's tap
#   vmtap.wait=60           seconds to wait for eth1 to appear, and to go
#
# Every line for the host starts with "VMTAP " on the serial console (ttyS0).
# The guest always ends with "VMTAP DONE" or "VMTAP FAIL <why>", then powers
# off (QEMU runs with -no-reboot, so it exits).

/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

say() { echo "VMTAP $*"; }
fail() {
	say "FAIL $*"
	poweroff -f
	exit 1
}
param() {
	for w in $(cat /proc/cmdline); do
		case "$w" in "vmtap.$1="*) echo "${w#*=}"; return ;; esac
	done
	echo "$2"
}
interfaces() { ls /sys/class/net | tr '\n' ','; }
# "sent=N received=M" of `ping -c N HOST` (output in /tmp/ping.out)
ping_host() {
	ping -c "$2" -W 10 "$1" >/tmp/ping.out 2>&1
	echo "sent=$2 received=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)"
}

MODE=$(param mode default)
IP=$(param ip 10.77.0.2/24)
HOST=$(param host 10.77.0.1)
PINGS=$(param pings 3)
RXPORT=$(param rxport 0)
TXPORT=$(param txport 0)
TXBYTES=$(param txbytes 0)
say "BOOT kernel=$(uname -r) cpus=$(nproc)"

# The virtio modules, in dependency order (written by build.ts).
for m in $(cat /etc/vmtap-modules); do
	insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

# virtio_net registers eth0 while insmod probes the PCI device; there is no
# event to wait on without udev, so poll with a deadline.
n=0
while [ ! -e /sys/class/net/eth0 ]; do
	n=$((n + 1))
	[ $n -gt 100 ] && fail "no eth0 (interfaces: $(ls /sys/class/net | tr '\n' ' '))"
	usleep 100000
done

say "NIC driver=$(basename "$(readlink /sys/class/net/eth0/device/driver)") mac=$(cat /sys/class/net/eth0/address) interfaces=$(interfaces)"
say "QUEUES rx=$(ls -d /sys/class/net/eth0/queues/rx-* | wc -l) tx=$(ls -d /sys/class/net/eth0/queues/tx-* | wc -l)"

ip link set lo up
ip addr add "$IP" dev eth0 || fail "ip addr add $IP"
ip link set eth0 up || fail "ip link set eth0 up"
GW=$(param gw "")
if [ -n "$GW" ]; then
	ip route add "$GW" dev eth0 || fail "ip route add $GW dev eth0"
	ip route add default via "$GW" || fail "ip route add default via $GW"
fi
ONLINK=$(param onlink "")
if [ -n "$ONLINK" ]; then
	ip route add "$ONLINK" dev eth0 || fail "ip route add $ONLINK dev eth0"
fi
say READY

if [ "$MODE" = hotplug ]; then
	# hotplug mode: the host hot-adds a NIC over QMP once we are READY (ACPI
	# PCI hot-plug on the pc machine; the kernel binds virtio_pci to it and
	# virtio_net registers eth1). Without udev there is no event to wait on:
	# poll /sys/class/net with a deadline, for its arrival and its removal.
	IP1=$(param ip1 10.77.3.2/24)
	HOST1=$(param host1 10.77.3.1)
	WAIT=$(($(param wait 60) * 10))
	n=0
	while [ ! -e /sys/class/net/eth1 ]; do
		n=$((n + 1))
		[ $n -gt "$WAIT" ] && fail "no eth1 appeared (interfaces: $(interfaces))"
		usleep 100000
	done
	say "HOTPLUG_NIC driver=$(basename "$(readlink /sys/class/net/eth1/device/driver)") mac=$(cat /sys/class/net/eth1/address) interfaces=$(interfaces)"
	say "HOTPLUG_QUEUES rx=$(ls -d /sys/class/net/eth1/queues/rx-* | wc -l) tx=$(ls -d /sys/class/net/eth1/queues/tx-* | wc -l)"
	ip addr add "$IP1" dev eth1 || fail "ip addr add $IP1 dev eth1"
	ip link set eth1 up || fail "ip link set eth1 up"
	say HOTPLUG_UP
	# guest -> host through eth1 (the host pings us meanwhile, then unplugs)
	say "HOTPLUG_PING $(ping_host "$HOST1" "$PINGS")"
	n=0
	while [ -e /sys/class/net/eth1 ]; do
		n=$((n + 1))
		[ $n -gt "$WAIT" ] && fail "eth1 was not removed"
		usleep 100000
	done
	say "HOTPLUG_GONE interfaces=$(interfaces)"
	# The host closes this connection (over eth0, which must still work) once
	# it has checked its side of the unplug: then power off.
	nc "$HOST" "$RXPORT" </dev/null >/dev/null || fail "nc $HOST $RXPORT (gate)"
	say DONE
	poweroff -f
fi

# guest -> host
say "GUEST_PING $(ping_host "$HOST" "$PINGS")"
[ -n "$ONLINK" ] && say "ONLINK_PING $(ping_host "$ONLINK" "$PINGS")"

# host -> guest: the host sends a payload on RXPORT once its own pings to us
# are done; nc exits when the host closes the connection.
if [ "$RXPORT" != 0 ]; then
	nc "$HOST" "$RXPORT" </dev/null >/tmp/rx || fail "nc $HOST $RXPORT (receive)"
	say "RX bytes=$(wc -c </tmp/rx) sha256=$(sha256sum /tmp/rx | cut -d' ' -f1)"
	rm -f /tmp/rx
fi

# guest -> host
if [ "$TXPORT" != 0 ]; then
	head -c "$TXBYTES" /dev/urandom >/tmp/tx
	say "TX bytes=$(wc -c </tmp/tx) sha256=$(sha256sum /tmp/tx | cut -d' ' -f1)"
	nc "$HOST" "$TXPORT" </tmp/tx >/dev/null || fail "nc $HOST $TXPORT (send)"
	say SENT
fi

say DONE
poweroff -f
