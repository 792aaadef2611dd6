#!/usr/bin/env node
// `npm start`: open a 4-queue TAP device the way a VMM wants it, hand its fds
// to a child process exactly as a VMM would get them, show what the child
// sees and the QEMU arguments that name those fds, then close it.
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const { handOff, openTap, probeFeatures, qemuArgs } = createRequire(import.meta.url)('../dist/index.js')

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
  console.log(`opened ${tap.ifname}: ${tap.tapFds.length} queues, vnetHdr=${tap.vnetHdr}, multiQueue=${tap.multiQueue}`)
  // The fds as the child gets them: handOff numbers them from 3, in order.
  const h = handOff(tap, { stdio: 'inherit' })
  console.log(
    `the child's fds: tap ${h.devices[0].tapFds.join(', ')}; vhost ${h.devices[0].vhostFds.join(', ') || 'none'}`,
  )
  console.log(`for QEMU: ${qemuArgs(h.devices[0], { id: 'n0', mac: '52:54:00:12:34:56' }).join(' ')}`)
  console.log('what the child sees at those numbers:')
  spawnSync('sh', ['-c', 'for fd in /proc/self/fd/*; do echo "  $fd -> $(readlink $fd)"; done'], {
    stdio: h.stdio,
  })
} finally {
  tap.close()
  console.log(`closed ${tap.ifname}`)
}
