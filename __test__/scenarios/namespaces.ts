// Scenarios for namespaces.spec.ts: a process in namespace O (the one runIn
// put it in) creates and configures devices in namespaces A, B... that the
// test created, without leaving O.
import { execFileSync } from 'node:child_process'
import { closeSync, openSync, readdirSync, readlinkSync } from 'node:fs'

import { closeAll, deleteTap, gcTaps, listTaps, openTap, openTapAsync, probeFeatures, TapError } from '../../index'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
/** `ip -j -d link show` in namespace `ns` (null: this process's), by name. */
function links(ns: string | null): Record<string, any> {
  const out = JSON.parse(sh('ip', ...(ns ? ['-n', ns] : []), '-j', '-d', 'link', 'show')) as any[]
  return Object.fromEntries(out.map((l) => [l.ifname, l]))
}
const threadNs = () => readlinkSync('/proc/thread-self/ns/net')
const fdCount = () => readdirSync('/proc/self/fd').length
const errOf = (e: unknown) => {
  const x = e as TapError
  return {
    code: x.code,
    errno: x.errno,
    syscall: x.syscall,
    path: x.path,
    message: x.message,
    tap: e instanceof TapError,
  }
}

/** The same name in two namespaces; setters act in the device's own; a persistent one deleted by netns. */
export function twoNamespaces(a: string, b: string) {
  const home = threadNs()
  const fds = fdCount()
  sh('ip', '-n', a, 'link', 'add', 'vmtbr', 'type', 'bridge')
  const ta = openTap({ name: 'vmt0', queues: 2, netns: a })
  const tb = openTap({ name: 'vmt0', queues: 2, netns: `/run/netns/${b}` })
  try {
    const before = { a: links(a).vmt0, b: links(b).vmt0, here: links(null).vmt0 ?? null }
    ta.setMtu(1400)
    ta.setMac('fe:00:00:00:0a:00')
    ta.attachToBridge('vmtbr')
    ta.setLinkUp(true)
    const after = { a: links(a).vmt0, b: links(b).vmt0 }
    const info = ta.getLinkInfo()
    // A persistent device in A, removed by name in A.
    openTap({ name: 'vmtp0', persist: true, netns: a }).close()
    const persisted = 'vmtp0' in links(a)
    deleteTap('vmtp0', { netns: a })
    const deleted = !('vmtp0' in links(a))
    const features = probeFeatures({ netns: a })
    return {
      before,
      after,
      info,
      netns: [ta.netns, tb.netns],
      persisted,
      deleted,
      features: features.raw !== null && features.tap,
      homeUnchanged: threadNs() === home,
      fdsDuring: fdCount() - fds,
    }
  } finally {
    ta.close()
    tb.close()
  }
}

/** Namespaces that do not exist, files that are not network namespaces, an fd given instead of a path. */
export function refusals(a: string) {
  const fds = fdCount()
  const home = threadNs()
  const out: Record<string, unknown> = {}
  for (const [label, netns] of [
    ['missing name', 'vmtap-no-such-ns'],
    ['missing path', '/run/netns/vmtap-no-such-ns'],
    ['regular file', '/etc/hostname'],
    ['mount namespace', '/proc/self/ns/mnt'],
  ] as const) {
    try {
      openTap({ name: 'vmtx0', netns })
      out[label] = 'opened'
    } catch (e) {
      out[label] = errOf(e)
    }
  }
  // An fd: the device lands in its namespace; closing the caller's fd later changes nothing.
  const fd = openSync(`/run/netns/${a}`, 'r')
  const tap = openTap({ name: 'vmtfd0', netns: fd })
  closeSync(fd)
  tap.setMtu(1300)
  const viaFd = { netns: tap.netns === fd, mtu: links(a).vmtfd0?.mtu, here: 'vmtfd0' in links(null) }
  tap.close()
  return { out, viaFd, fdsAfter: fdCount() - fds, homeUnchanged: threadNs() === home, left: Object.keys(links(a)) }
}

/** 8 concurrent openTapAsync calls over 4 namespaces: each device where it was asked. */
export async function concurrent(namespaces: string[]) {
  const home = threadNs()
  const asks = Array.from({ length: 8 }, (_, i) => ({ ns: namespaces[i % namespaces.length], name: `vmtc${i}` }))
  const taps = await Promise.all(asks.map((a) => openTapAsync({ name: a.name, queues: 2, netns: a.ns })))
  try {
    const placed = asks.map((a) => ({
      name: a.name,
      ns: a.ns,
      inOwn: a.name in links(a.ns),
      elsewhere: namespaces.filter((n) => n !== a.ns && a.name in links(n)),
    }))
    return { placed, homeUnchanged: threadNs() === home }
  } finally {
    await closeAll(taps)
  }
}

/** The inventory and the tag of a device in another namespace. */
export async function inventoryInNamespace(a: string) {
  const tap = openTap({ name: 'vmti0', queues: 2, netns: a, tag: 'nsinv' })
  try {
    tap.setLinkUp(true)
    const inA = listTaps({ netns: a }).map((t) => ({ ifname: t.ifname, tag: t.tag, queues: t.queues }))
    const here = listTaps().map((t) => t.ifname)
    tap.setTag('nsinv2')
    const retagged = listTaps({ netns: a }).find((t) => t.ifname === 'vmti0')?.tag
    const stats = tap.getStats()
    openTap({ name: 'vmtg0', persist: true, netns: a, tag: 'nsgc' }).close()
    const dry = await gcTaps({ netns: a, tag: 'nsgc', dryRun: true })
    const gc = await gcTaps({ netns: a, tag: 'nsgc' })
    const after = listTaps({ netns: a }).map((t) => t.ifname)
    return {
      inA,
      here,
      retagged,
      statsOk: typeof stats.rxPackets === 'number',
      dry: dry.removed.map((e) => e.ifname),
      removed: gc.removed.map((e) => e.ifname),
      after,
    }
  } finally {
    tap.close()
  }
}
