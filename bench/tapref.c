/*
 * bench/tapref.c: the C floor for vmtap's benchmark (bench/run.mjs).
 *
 * The same syscalls vmtap's openTap({ queues: N, vnetHdr: true }) makes, with
 * nothing around them: per queue open("/dev/net/tun", O_RDWR|O_CLOEXEC); on
 * the first fd TUNGETFEATURES; TUNSETIFF with IFF_TAP|IFF_NO_PI|IFF_VNET_HDR
 * (|IFF_MULTI_QUEUE when N > 1) on each, the first with an empty name (the
 * kernel picks tap%d), the others with the name it picked; then one TUNGETIFF
 * and TUNSETOWNER(geteuid()) on the first fd (vmtap's default: a device it
 * creates is owned by the caller). Timed with CLOCK_MONOTONIC inside this
 * process.
 *
 * A line protocol on stdin/stdout, so the runner can interleave it with
 * vmtap's runs (the commands answer one line: a number of nanoseconds, "ok",
 * or "error <text>"):
 *   open N        open one device of N queues (timed); the fds are kept
 *   close         close the kept device's fds, sequentially (timed)
 *   openmany N    open N single-queue devices (not timed); kept
 *   closeseq      close every kept device one after the other (timed)
 *   closethreads [KiB]  close every kept device, one pthread per device
 *                 (timed, thread creation and join included); thread stacks
 *                 of KiB (default 64, as vmtap's close threads)
 *   batch N K     open K devices of N queues back to back, each timed; kept;
 *                 answers the K times, space-separated
 *   openseq N     open N single-queue devices one after the other (timed); kept
 *   openthreads N open N single-queue devices, one pthread per device (timed,
 *                 thread creation and join included; 64 KiB stacks); kept
 *   bringup N BR MTU MAC   a whole NIC (timed): open a device of N queues as
 *                 `open` does, then on one AF_UNIX control socket SIOCSIFMTU,
 *                 SIOCSIFHWADDR (MAC as aa:bb:cc:dd:ee:ff), SIOCGIFINDEX and
 *                 SIOCBRADDIF onto bridge BR, SIOCGIFFLAGS and SIOCSIFFLAGS
 *                 (up); kept beside the devices already kept
 *   fill IFNAME SIZE N   make IFNAME's queue hold N frames of SIZE bytes: its
 *                 txqueuelen set to N + 256, then N frames sent to it through an
 *                 AF_PACKET socket that bypasses the qdisc (not timed);
 *                 answers how many the kernel took
 *   pktread SIZE N   the C floor of reading frames: a device of its own
 *                 (IFF_TAP|IFF_NO_PI, up), filled as with fill, then N
 *                 blocking read(2)s of one frame each (timed)
 *   pktwrite SIZE N  the C floor of writing frames: N write(2)s of one
 *                 SIZE-byte frame each to a device of its own, up (timed)
 *   idlethreads N   start N threads that only sleep (bench/profile-open.mjs:
 *                 does a multi-threaded process, as Node is, pay more?)
 *   quit
 *
 * Build: cc -O2 -pthread -o tapref bench/tapref.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/sockios.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <net/ethernet.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_FDS 4096

struct dev {
	int fds[256];
	int n;
	char name[IFNAMSIZ];
};

static struct dev devs[MAX_FDS];
static int ndevs;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void close_dev(struct dev *d)
{
	for (int i = 0; i < d->n; i++)
		close(d->fds[i]);
	d->n = 0;
}

/* Open one device of `queues` queues into d. 0, or -1 with errno set and
 * every fd opened so far closed. */
static int open_dev(struct dev *d, int queues, const char **what)
{
	struct ifreq ifr;
	unsigned int features = 0;
	char name[IFNAMSIZ] = "";
	short flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (queues > 1 ? IFF_MULTI_QUEUE : 0);

	d->n = 0;
	for (int q = 0; q < queues; q++) {
		int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			*what = "open";
			goto fail;
		}
		d->fds[d->n++] = fd;
		if (q == 0 && ioctl(fd, TUNGETFEATURES, &features) < 0) {
			*what = "TUNGETFEATURES";
			goto fail;
		}
		memset(&ifr, 0, sizeof ifr);
		memcpy(ifr.ifr_name, name, IFNAMSIZ);
		ifr.ifr_flags = flags;
		if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
			*what = "TUNSETIFF";
			goto fail;
		}
		if (q == 0)
			memcpy(name, ifr.ifr_name, IFNAMSIZ);
	}
	memset(&ifr, 0, sizeof ifr);
	if (ioctl(d->fds[0], TUNGETIFF, &ifr) < 0) {
		*what = "TUNGETIFF";
		goto fail;
	}
	memcpy(d->name, ifr.ifr_name, IFNAMSIZ);
	if (ioctl(d->fds[0], TUNSETOWNER, (unsigned long)geteuid()) < 0) {
		*what = "TUNSETOWNER";
		goto fail;
	}
	return 0;
fail: {
	int e = errno;
	close_dev(d);
	errno = e;
	return -1;
}
}

static void *close_thread(void *arg)
{
	close_dev(arg);
	return NULL;
}

static void close_all_devs(void)
{
	for (int i = 0; i < ndevs; i++)
		close_dev(&devs[i]);
	ndevs = 0;
}

/* A frame of `size` bytes to nobody: a locally administered unicast
 * destination and ethertype 0x88b5 (local experimental), which the kernel
 * drops early on receive. */
static void make_frame(unsigned char *f, int size)
{
	static const unsigned char dst[6] = { 0x02, 0, 0, 0, 0, 0x99 };
	static const unsigned char src[6] = { 0x02, 0, 0, 0, 0, 0x98 };
	memset(f, 0x5a, size);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;
	f[13] = 0xb5;
}

/* Set IFNAME's txqueuelen and bring it up. */
static int link_setup(const char *name, int txqlen)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_qlen = txqlen;
	if (ioctl(s, SIOCSIFTXQLEN, &ifr) < 0)
		goto fail;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		goto fail;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		goto fail;
	close(s);
	return 0;
fail:
	close(s);
	return -1;
}

/* Queue N frames of SIZE bytes on IFNAME (its txqueuelen set to N and some
 * room for what the kernel sends itself when the link comes up). */
static int fill(const char *name, int size, int n)
{
	static unsigned char f[65536];
	struct sockaddr_ll a;
	int one = 1, sent = 0;
	if (link_setup(name, n + 256) < 0)
		return -1;
	int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
	memset(&a, 0, sizeof a);
	a.sll_family = AF_PACKET;
	{
		struct ifreq ifr;
		memset(&ifr, 0, sizeof ifr);
		strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
		if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
			close(s);
			return -1;
		}
		a.sll_ifindex = ifr.ifr_ifindex;
	}
	a.sll_halen = 6;
	make_frame(f, size);
	memcpy(a.sll_addr, f, 6);
	for (int i = 0; i < n; i++)
		if (sendto(s, f, size, 0, (struct sockaddr *)&a, sizeof a) == size)
			sent++;
	close(s);
	return sent;
}

/* A TAP device of its own for the frame benchmarks (kept in devs[0]). */
static int frame_dev(const char *name)
{
	struct ifreq ifr;
	close_all_devs();
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	memset(&ifr, 0, sizeof ifr);
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		close(fd);
		return -1;
	}
	devs[0].fds[0] = fd;
	devs[0].n = 1;
	ndevs = 1;
	return fd;
}

static void *open_thread(void *arg)
{
	const char *what;
	return open_dev(arg, 1, &what) < 0 ? (void *)1 : NULL;
}

/* The host side of a NIC on one control socket: MTU, MAC, bridge port, up. */
static int configure(const char *name, const char *bridge, int mtu, const unsigned char mac[6], const char **what)
{
	struct ifreq ifr;
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		*what = "socket";
		return -1;
	}
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, name, IFNAMSIZ);
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0) {
		*what = "SIOCSIFMTU";
		goto fail;
	}
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, name, IFNAMSIZ);
	ifr.ifr_hwaddr.sa_family = 1; /* ARPHRD_ETHER */
	memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
	if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) {
		*what = "SIOCSIFHWADDR";
		goto fail;
	}
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, name, IFNAMSIZ);
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
		*what = "SIOCGIFINDEX";
		goto fail;
	}
	int index = ifr.ifr_ifindex;
	memset(&ifr, 0, sizeof ifr);
	snprintf(ifr.ifr_name, IFNAMSIZ, "%s", bridge);
	ifr.ifr_ifindex = index;
	if (ioctl(s, SIOCBRADDIF, &ifr) < 0) {
		*what = "SIOCBRADDIF";
		goto fail;
	}
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, name, IFNAMSIZ);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		*what = "SIOCGIFFLAGS";
		goto fail;
	}
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
		*what = "SIOCSIFFLAGS";
		goto fail;
	}
	close(s);
	return 0;
fail: {
	int e = errno;
	close(s);
	errno = e;
	return -1;
}
}

/* idlethreads: a thread that only sleeps, so the process is multi-threaded. */
static void *idle_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

int main(void)
{
	char line[256];
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (fgets(line, sizeof line, stdin)) {
		char cmd[32];
		int n = 0;
		const char *what = "";
		if (sscanf(line, "%31s %d", cmd, &n) < 1)
			continue;
		if (!strcmp(cmd, "quit")) {
			break;
		} else if (!strcmp(cmd, "idlethreads")) {
			int ok = 1;
			for (int i = 0; i < n && ok; i++) {
				pthread_t t;
				ok = pthread_create(&t, NULL, idle_thread, NULL) == 0;
			}
			if (ok)
				printf("ok\n");
			else
				printf("error pthread_create: %s\n", strerror(errno));
		} else if (!strcmp(cmd, "open")) {
			close_all_devs();
			uint64_t t0 = now_ns();
			int r = open_dev(&devs[0], n, &what);
			uint64_t t1 = now_ns();
			if (r < 0) {
				printf("error %s: %s\n", what, strerror(errno));
				continue;
			}
			ndevs = 1;
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "close")) {
			uint64_t t0 = now_ns();
			close_all_devs();
			uint64_t t1 = now_ns();
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "openmany")) {
			close_all_devs();
			if (n > MAX_FDS)
				n = MAX_FDS;
			int ok = 1;
			for (int i = 0; i < n; i++) {
				if (open_dev(&devs[i], 1, &what) < 0) {
					printf("error %s: %s\n", what, strerror(errno));
					ok = 0;
					break;
				}
				ndevs++;
			}
			if (ok)
				printf("ok\n");
			else
				close_all_devs();
		} else if (!strcmp(cmd, "batch")) {
			int k = 0;
			sscanf(line, "%*s %*d %d", &k);
			close_all_devs();
			if (k > MAX_FDS)
				k = MAX_FDS;
			static uint64_t times[MAX_FDS];
			int i;
			for (i = 0; i < k; i++) {
				uint64_t t0 = now_ns();
				int r = open_dev(&devs[i], n, &what);
				times[i] = now_ns() - t0;
				if (r < 0)
					break;
				ndevs++;
			}
			if (i < k) {
				printf("error %s: %s\n", what, strerror(errno));
				close_all_devs();
				continue;
			}
			for (i = 0; i < k; i++)
				printf(i ? " %llu" : "%llu", (unsigned long long)times[i]);
			printf("\n");
		} else if (!strcmp(cmd, "openseq")) {
			close_all_devs();
			if (n > MAX_FDS)
				n = MAX_FDS;
			int i;
			uint64_t t0 = now_ns();
			for (i = 0; i < n; i++) {
				if (open_dev(&devs[i], 1, &what) < 0)
					break;
				ndevs++;
			}
			uint64_t t1 = now_ns();
			if (i < n) {
				printf("error %s: %s\n", what, strerror(errno));
				close_all_devs();
				continue;
			}
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "openthreads")) {
			static pthread_t th[MAX_FDS];
			pthread_attr_t attr;
			close_all_devs();
			if (n > MAX_FDS)
				n = MAX_FDS;
			pthread_attr_init(&attr);
			pthread_attr_setstacksize(&attr, 64 * 1024);
			int failed = 0, started = 0;
			uint64_t t0 = now_ns();
			for (; started < n; started++)
				if (pthread_create(&th[started], &attr, open_thread, &devs[started]) != 0)
					break;
			for (int i = 0; i < started; i++) {
				void *r;
				pthread_join(th[i], &r);
				failed |= r != NULL;
			}
			uint64_t t1 = now_ns();
			pthread_attr_destroy(&attr);
			ndevs = started;
			if (failed || started < n) {
				printf("error openthreads: %d of %d\n", started, n);
				close_all_devs();
				continue;
			}
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "bringup")) {
			char bridge[IFNAMSIZ];
			int mtu = 0;
			unsigned int m[6];
			unsigned char mac[6];
			if (sscanf(line, "%*s %*d %15s %d %x:%x:%x:%x:%x:%x", bridge, &mtu, &m[0], &m[1], &m[2], &m[3], &m[4],
				   &m[5]) != 8) {
				printf("error usage: bringup N BR MTU MAC\n");
				continue;
			}
			for (int i = 0; i < 6; i++)
				mac[i] = (unsigned char)m[i];
			if (ndevs >= MAX_FDS) {
				printf("error too many devices\n");
				continue;
			}
			struct dev *d = &devs[ndevs];
			uint64_t t0 = now_ns();
			int r = open_dev(d, n, &what);
			if (r == 0) {
				ndevs++;
				r = configure(d->name, bridge, mtu, mac, &what);
			}
			uint64_t t1 = now_ns();
			if (r < 0) {
				printf("error %s: %s\n", what, strerror(errno));
				continue;
			}
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "closeseq")) {
			uint64_t t0 = now_ns();
			close_all_devs();
			uint64_t t1 = now_ns();
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "closethreads")) {
			static pthread_t th[MAX_FDS];
			int started[MAX_FDS];
			pthread_attr_t attr;
			pthread_attr_init(&attr);
			/* 64 KiB stacks, as vmtap's close threads (default: 8 MiB). */
			pthread_attr_setstacksize(&attr, n > 0 ? (size_t)n * 1024 : 64 * 1024);
			uint64_t t0 = now_ns();
			for (int i = 0; i < ndevs; i++) {
				started[i] = pthread_create(&th[i], &attr, close_thread, &devs[i]) == 0;
				if (!started[i])
					close_dev(&devs[i]);
			}
			for (int i = 0; i < ndevs; i++)
				if (started[i])
					pthread_join(th[i], NULL);
			uint64_t t1 = now_ns();
			pthread_attr_destroy(&attr);
			ndevs = 0;
			printf("%llu\n", (unsigned long long)(t1 - t0));
		} else if (!strcmp(cmd, "fill")) {
			char name[IFNAMSIZ];
			int size = 0, k = 0;
			if (sscanf(line, "%*s %15s %d %d", name, &size, &k) != 3) {
				printf("error usage: fill IFNAME SIZE N\n");
				continue;
			}
			int got = fill(name, size, k);
			if (got < 0)
				printf("error fill: %s\n", strerror(errno));
			else
				printf("%d\n", got);
		} else if (!strcmp(cmd, "pktread") || !strcmp(cmd, "pktwrite")) {
			static unsigned char f[65536];
			int size = n, k = 0;
			sscanf(line, "%*s %*d %d", &k);
			int fd = frame_dev("tpref0");
			if (fd < 0) {
				printf("error TUNSETIFF: %s\n", strerror(errno));
				continue;
			}
			int reading = !strcmp(cmd, "pktread");
			if (reading ? fill("tpref0", size, k) != k : link_setup("tpref0", 1000) < 0) {
				printf("error setup: %s\n", strerror(errno));
				close_all_devs();
				continue;
			}
			make_frame(f, size);
			int i;
			uint64_t t0 = now_ns();
			for (i = 0; i < k; i++) {
				ssize_t r = reading ? read(fd, f, sizeof f) : write(fd, f, size);
				if (r < 0)
					break;
			}
			uint64_t t1 = now_ns();
			if (i < k)
				printf("error %s: %s\n", reading ? "read" : "write", strerror(errno));
			else
				printf("%llu\n", (unsigned long long)(t1 - t0));
			close_all_devs();
		} else {
			printf("error unknown command %s\n", cmd);
		}
	}
	close_all_devs();
	return 0;
}
