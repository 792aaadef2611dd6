// Scenarios for hardening.spec.ts. Each runs as root inside a network
// namespace the test created (runIn), so devices stay there.
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'

import { closeAll, openTap, type TapDevice, TapError } from '../../index'
import { child, unprivilegedKit } from './reliability'

const sh = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' })
const sysfs = (name: string, attr: string) => readFileSync(`/sys/class/net/${name}/${attr}`, 'utf8').trim()
const ipLink = (name: string) => JSON.parse(sh('ip', '-j', '-d', 'link', 'show', 'dev', name))[0]
const errOf = (f: () => unknown) => {
  try {
    f()
    return null
  } catch (e) {
    const x = e as TapError
    return { code: x.code, syscall: x.syscall, message: x.message, isTapError: e instanceof TapError }
  }
}

/** Who may attach to the devices vmtap creates, and what makes them persistent. */
export function ownership(repo: string) {
  // Held by this process while an unprivileged child tries to join them.
  const owned = openTap({ name: 'hown0', queues: 2 })
  const ownerless = openTap({ name: 'hnob0', queues: 2, owner: null })
  const grouped = openTap({ name: 'hgrp0', queues: 2, group: 65533 })
  const dir = unprivilegedKit(repo)
  try {
    const kid = child(dir, `mount --bind ${dir}/tun666 /dev/net/tun`, 65534, [
      { label: 'joinOwned', fn: 'openTap', args: [{ name: 'hown0', queues: 2 }] },
      { label: 'joinOwnerless', fn: 'openTap', args: [{ name: 'hnob0', queues: 2 }] },
      { label: 'joinGrouped', fn: 'openTap', args: [{ name: 'hgrp0', queues: 2 }] },
    ])
    const owners = {
      owned: [sysfs('hown0', 'owner'), sysfs('hown0', 'group')],
      ownerless: [sysfs('hnob0', 'owner'), sysfs('hnob0', 'group')],
      grouped: [sysfs('hgrp0', 'owner'), sysfs('hgrp0', 'group')],
    }
    // Making a device persistent, whichever way: an ownerless device a second
    // opener makes persistent gets the caller as its owner first.
    const joined = openTap({ name: 'hnob0', queues: 2 })
    joined.setPersist(true)
    const afterSetPersist = [sysfs('hnob0', 'owner'), sysfs('hnob0', 'tun_flags')]
    joined.setPersist(false)
    joined.close()
    // An opt-out persistent device stays unowned (what `ip tuntap add` makes).
    openTap({ name: 'hnob1', persist: true, owner: null }).close()
    const optOutPersistent = sysfs('hnob1', 'owner')
    sh('ip', 'link', 'del', 'hnob1')
    // vmtap exec --persist makes the device persistent after the open.
    const cli = join(repo, 'dist', 'cli.js')
    const ex = spawnSync(process.execPath, [cli, 'exec', '--persist', '--name', 'hexp0', '--', 'true'], {
      encoding: 'utf8',
    })
    const execPersist = { status: ex.status, stderr: ex.stderr, owner: sysfs('hexp0', 'owner') }
    sh('ip', 'link', 'del', 'hexp0')
    return { kid, owners, afterSetPersist, optOutPersistent, execPersist }
  } finally {
    for (const t of [owned, ownerless, grouped]) t.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Link methods act on the device itself, not on whatever has its old name now. */
export function rename() {
  const tap = openTap({ name: 'hren0', mtu: 1500 })
  try {
    const ifindex = tap.getLinkInfo().ifindex
    sh('ip', 'link', 'set', 'dev', 'hren0', 'name', 'hren1')
    sh('ip', 'link', 'add', 'hren0', 'type', 'bridge')
    tap.setMtu(1300)
    tap.setMac('fe:00:00:00:13:00')
    tap.setLinkUp(true)
    const info = tap.getLinkInfo()
    return {
      ifindex,
      info,
      renamed: { mtu: ipLink('hren1').mtu, address: ipLink('hren1').address, flags: ipLink('hren1').flags },
      other: { mtu: ipLink('hren0').mtu, address: ipLink('hren0').address, flags: ipLink('hren0').flags },
      otherIndex: ipLink('hren0').ifindex,
    }
  } finally {
    tap.close()
    sh('ip', 'link', 'del', 'hren0')
  }
}

/** uniqueName goes round its template's number space instead of running out. */
export async function uniqueNames() {
  const template = 'abcdefghijklm%d' // 15 bytes: two digits of room, 100 names
  const names: string[] = []
  for (let i = 0; i < 130; i++) {
    const t = openTap({ name: template, uniqueName: true })
    names.push(t.ifname)
    t.close()
  }
  // Every name taken: the error says so.
  const held: TapDevice[] = []
  let exhausted: ReturnType<typeof errOf> = null
  try {
    for (let i = 0; i < 100; i++) held.push(openTap({ name: template, uniqueName: true }))
    exhausted = errOf(() => openTap({ name: template, uniqueName: true }))
  } finally {
    await closeAll(held)
  }
  return { names, held: held.length, exhausted }
}

/**
 * The parent's sysfs stays mounted in `unshare -n`: a device of the same name
 * and ifindex there must not be taken for the one in this namespace.
 */
export function sysfsFromAnotherNamespace(repo: string) {
  sh('ip', 'tuntap', 'add', 'dev', 'hsx0', 'mode', 'tap', 'multi_queue')
  const ifindex = Number(sysfs('hsx0', 'ifindex'))
  const dir = unprivilegedKit(repo)
  try {
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
    const steps = [{ label: 'open', fn: 'openTap', args: [{ name: 'hsx0' }] }]
    const script = `ip link add hsx0 index ${ifindex} type bridge && exec ${q(process.execPath)} ${q(`${dir}/unpriv.js`)} ${q(dir)} ${q(JSON.stringify(steps))}`
    const r = spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8' })
    const line = r.stdout.trim().split('\n').pop() || '{}'
    return { status: r.status, stderr: r.stderr, report: JSON.parse(line), ifindex }
  } finally {
    sh('ip', 'link', 'del', 'hsx0')
    rmSync(dir, { recursive: true, force: true })
  }
}
