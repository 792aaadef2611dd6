// Scenarios for macvtap.spec.ts: a process in namespace O (the one runIn put
// it in) makes a veth pair vb0/vb1 there and opens macvtaps on vb0. Frames
// written to a macvtap's fds must leave through vb0 and arrive on vb1.
import { execFileSync } from 'node:child_process'
import { readdirSync, readlinkSync, writeSync } from 'node:fs'

import { deleteTap, openMacvtap, openMacvtapAsync, type TapDevice, TapError } from '../../index'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const fdCount = () => readdirSync('/proc/self/fd').length
const threadNs = () => readlinkSync('/proc/thread-self/ns/net')

/** `ip -d -j link show` of namespace `ns` (null: this one), by name. */
function links(ns: string | null = null): Record<string, any> {
  const out = JSON.parse(sh('ip', ...(ns ? ['-n', ns] : []), '-d', '-j', 'link', 'show')) as any[]
  return Object.fromEntries(out.map((l) => [l.ifname, l]))
}

/** vb0 (the lower link) and vb1, up, without IPv6 (its neighbour discovery would add frames). */
function veth(): void {
  sh('sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1')
  sh('ip', 'link', 'add', 'vb0', 'type', 'veth', 'peer', 'name', 'vb1')
  sh('ip', 'link', 'set', 'vb0', 'up')
  sh('ip', 'link', 'set', 'vb1', 'up')
}

function rxPackets(ifname: string): number {
  return (JSON.parse(sh('ip', '-s', '-j', 'link', 'show', 'dev', ifname)) as any[])[0].stats64.rx.packets
}

/** A broadcast frame from `src` written to each fd (no vnet header): how many arrived on vb1. */
function framesThrough(tap: TapDevice): number {
  const src = Buffer.from((tap.mac as string).split(':').map((h) => parseInt(h, 16)))
  const frame = Buffer.concat([Buffer.alloc(6, 0xff), src, Buffer.from([0x88, 0xb5]), Buffer.alloc(46, 0x5a)])
  const before = rxPackets('vb1')
  for (const fd of tap.tapFds) writeSync(fd, frame)
  return rxPackets('vb1') - before
}

const errOf = (e: unknown) => {
  const x = e as TapError
  return {
    tap: e instanceof TapError,
    code: x.code,
    errno: x.errno,
    syscall: x.syscall,
    ifname: x.ifname,
    message: x.message,
  }
}

/** A 2-queue macvtap: what it is, what ip says, frames through every queue, gone after close. */
export function basics() {
  veth()
  const fds = fdCount()
  const tap = openMacvtap({ link: 'vb0', queues: 2, vnetHdr: false, up: true })
  const ip = links()[tap.ifname]
  const out = {
    ifname: tap.ifname,
    kind: tap.kind,
    mac: tap.mac,
    ipAddress: ip?.address,
    ipKind: ip?.linkinfo?.info_kind,
    ipMode: ip?.linkinfo?.info_data?.mode,
    ipLink: ip?.link,
    up: ip?.flags.includes('UP'),
    queues: tap.tapFds.length,
    multiQueue: tap.multiQueue,
    vnetHdr: tap.vnetHdr,
    netns: tap.netns,
    frames: framesThrough(tap),
    info: tap.getLinkInfo(),
    setOwner: (() => {
      try {
        tap.setOwner(0)
        return 'set'
      } catch (e) {
        return (e as { code?: string }).code
      }
    })(),
    gone: false,
    fdsLeft: 0,
  }
  tap.close()
  out.gone = !(out.ifname in links())
  out.fdsLeft = fdCount() - fds
  return out
}

/** Options on the link, persistence and deleteTap, the async open, setPersist taken back. */
export async function options() {
  veth()
  const tap = await openMacvtapAsync({
    link: 'vb0',
    name: 'mvo%d',
    mode: 'vepa',
    mac: '52:54:00:77:00:02',
    mtu: 1400,
    persist: true,
    tag: 'mvt-spec',
  })
  const ip = links()[tap.ifname]
  const out: Record<string, unknown> = {
    ifname: tap.ifname,
    mac: tap.mac,
    ip: { address: ip.address, mtu: ip.mtu, mode: ip.linkinfo.info_data.mode, alias: ip.ifalias },
    vnetHdr: tap.vnetHdr,
  }
  await tap.closeAsync()
  out.keptAfterClose = tap.ifname in links()
  deleteTap(tap.ifname)
  out.deleted = !(tap.ifname in links())
  // setMac moves the guest's MAC too.
  const t2 = openMacvtap({ link: 'vb0', name: 'mvm0', persist: true })
  t2.setMac('52:54:00:77:00:03')
  out.macAfterSet = t2.mac
  t2.setPersist(false)
  t2.close()
  out.notPersistentAnyMore = !('mvm0' in links())
  return out
}

/** The refusals, as TapErrors; nothing left behind. */
export function refusals(other: string) {
  veth()
  sh('ip', 'link', 'add', 'link', 'vb0', 'name', 'mvx', 'type', 'macvtap')
  const before = Object.keys(links()).sort()
  const fds = fdCount()
  const home = threadNs()
  const out: Record<string, unknown> = {}
  for (const [label, o] of [
    ['missing link', { link: 'nope0' }],
    ['macvtap link', { link: 'mvx' }],
    ['loopback link', { link: 'lo' }],
    ['existing name', { link: 'vb0', name: 'vb1' }],
    ['link elsewhere', { link: 'vb0', netns: other }],
  ] as const) {
    try {
      openMacvtap(o).close()
      out[label] = 'opened'
    } catch (e) {
      out[label] = errOf(e)
    }
  }
  return {
    out,
    same: JSON.stringify(Object.keys(links()).sort()) === JSON.stringify(before),
    otherEmpty: Object.keys(links(other)).length === 1,
    fdsLeft: fdCount() - fds,
    homeUnchanged: threadNs() === home,
  }
}

/**
 * Run where /dev is an empty tmpfs (a container without udev or devtmpfs):
 * no /dev/tap<ifindex>, so vmtap makes its own node, opens it and removes it.
 */
export function withoutDevNodes() {
  veth()
  const devBefore = readdirSync('/dev').sort()
  const tap = openMacvtap({ link: 'vb0', queues: 2, vnetHdr: false, up: true })
  const ifindex = links()[tap.ifname].ifindex
  const out = {
    ifname: tap.ifname,
    ifindex,
    devBefore,
    devAfter: readdirSync('/dev').sort(),
    openedFrom: tap.tapFds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`)),
    frames: framesThrough(tap),
    gone: false,
  }
  tap.close()
  out.gone = !(out.ifname in links())
  return out
}
