#!/usr/bin/env node
// `npm start`: open a 4-queue TAP device the way a VMM wants it, show what
// the kernel gave us, then close it.
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const { openTap, probeFeatures } = createRequire(import.meta.url)('../dist/index.js')

const features = probeFeatures()
console.log('host features:', { ...features, raw: features.raw === null ? null : `0x${features.raw.toString(16)}` })
let tap
try {
  tap = openTap({ name: 'vmtapdemo%d', queues: 4, vnetHdr: 'auto', vhost: 'auto' })
} catch (e) {
  console.error(`openTap failed: ${e.message}`)
  process.exit(1)
}
try {
  console.log(
    `opened ${tap.ifname}: tapFds=[${tap.tapFds}] vhostFds=[${tap.vhostFds}] vnetHdr=${tap.vnetHdr} multiQueue=${tap.multiQueue}`,
  )
  console.log(`kernel: tun_flags=${readFileSync(`/sys/class/net/${tap.ifname}/tun_flags`, 'utf8').trim()}`)
  try {
    console.log(execFileSync('ip', ['-d', 'link', 'show', 'dev', tap.ifname], { encoding: 'utf8' }).trim())
  } catch {
    // `ip` is only used here to show the result; the library never runs it.
  }
  const q = tap.tapFds.length > 1
  console.log(
    `for QEMU: -netdev tap,id=n0,${q ? 'fds' : 'fd'}=${tap.tapFds.join(':')}${tap.vhostFds.length ? `,vhost=on,${q ? 'vhostfds' : 'vhostfd'}=${tap.vhostFds.join(':')}` : ''} (after handing the fds over)`,
  )
} finally {
  tap.close()
  console.log(`closed ${tap.ifname}`)
}
