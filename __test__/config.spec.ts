// Native configuration, each setter checked against what the
// kernel reports, inside network namespaces the tests create.
import test from 'ava'
import { join } from 'node:path'

import { constants, hostMacFor, openTap, type OpenTapOptions } from '../index'
import { native } from '../lib/native'
import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'

type Err = { name: string; code: string; syscall: string; message: string; isTapError: boolean } | null
const scenario = 'scenarios/config.ts'

rootTest('open-time link options: MTU 9000, host MAC, bridge, up — as ip -d -j link reports', async (t) => {
  const r = await withNetns((ns) =>
    runIn<{
      ip: {
        mtu: number
        address: string
        master: string
        flags: string[]
        linkinfo: { info_data: { numqueues: number } }
      }
      info: { up: boolean; mtu: number; mac: string }
    }>(ns, scenario, 'openConfigured'),
  )
  t.is(r.ip.mtu, 9000)
  t.is(r.ip.address, 'fe:54:00:12:34:56')
  t.is(r.ip.master, 'br0')
  t.true(r.ip.flags.includes('UP'))
  t.is(r.ip.linkinfo.info_data.numqueues, 2)
  t.deepEqual({ up: r.info.up, mtu: r.info.mtu, mac: r.info.mac }, { up: true, mtu: 9000, mac: 'fe:54:00:12:34:56' })
})

rootTest('each setter is what the kernel then reports', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'setters'))
  t.false(r.initial.up)
  t.true(r.afterUp.info)
  t.is(r.afterUp.flags & 1, 1, 'IFF_UP in sysfs flags')
  t.false(r.afterDown.info)
  t.is(r.afterDown.flags & 1, 0)
  t.deepEqual(r.mtu, { get: 1400, sysfs: 1400 })
  t.is(r.mtuMax, 65521)
  t.like(r.mtuTooBig as Err, { code: 'EINVAL', syscall: 'ioctl(SIOCSIFMTU)', isTapError: true })
  t.regex((r.mtuTooBig as Err)!.message, /65521/)
  t.deepEqual(r.mac, { get: 'fe:00:00:aa:bb:cc', sysfs: 'fe:00:00:aa:bb:cc' })
  t.is(r.bridged.master, 'br1')
  t.deepEqual(r.bridged.brif, ['vm1'])
  t.like(r.bridgeTwice as Err, { code: 'EBUSY', syscall: 'ioctl(SIOCBRADDIF)' })
  t.deepEqual(r.unbridged, { master: null, brif: [] })
  t.like(r.notABridge as Err, { code: 'EOPNOTSUPP' })
  t.regex((r.notABridge as Err)!.message, /lo is not a bridge/)
  t.like(r.noBridge as Err, { code: 'ENODEV' })
  t.is(r.hdr12, 12)
  t.is(r.hdr20, 20)
  t.is(r.hdr10, 10)
  t.true(r.gone)
})

rootTest('offloads: probe, QEMU-style set, read back with ethtool -k', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'offloads'))
  // This kernel (6.x) takes every offload; the probe must say so.
  t.deepEqual(r.probed, { csum: true, tso4: true, tso6: true, ecn: true, ufo: true, uso4: true, uso6: true })
  t.deepEqual(r.all, r.probed)
  t.false(r.before['tcp-segmentation-offload'])
  t.true(r.afterAll['tx-checksumming'])
  t.true(r.afterAll['tcp-segmentation-offload'])
  t.true(r.afterAll['tx-tcp-segmentation'])
  t.true(r.afterAll['tx-tcp6-segmentation'])
  t.true(r.afterAll['tx-tcp-ecn-segmentation'])
  t.true(r.afterAll['tx-udp-segmentation'])
  t.deepEqual(r.csumOnly, { csum: true, tso4: false, tso6: false, ecn: false, ufo: false, uso4: false, uso6: false })
  t.true(r.afterCsum['tx-checksumming'])
  t.false(r.afterCsum['tx-tcp-segmentation'])
  t.false(r.afterNone['tx-checksumming'])
})

rootTest('open-time vnetHdrSize and offloads', async (t) => {
  const r = await withNetns((ns) =>
    runIn<{ hdr: number; features: Record<string, boolean> }>(ns, scenario, 'offloadsAtOpen'),
  )
  t.is(r.hdr, 12)
  t.true(r.features['tx-tcp-segmentation'])
  t.true(r.features['tx-tcp6-segmentation'])
  t.false(r.features['tx-udp-segmentation'])
})

rootTest('queue enable/disable shows as numqueues/numdisabled', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'queues'))
  t.deepEqual(r.start, { numqueues: 4, numdisabled: 0 })
  t.deepEqual(r.twoOff, { numqueues: 2, numdisabled: 2 })
  t.like(r.again as Err, { code: 'EINVAL', syscall: 'ioctl(TUNSETQUEUE)' })
  t.regex((r.again as Err)!.message, /queue 1 is already disabled/)
  t.deepEqual(r.oneOff, { numqueues: 3, numdisabled: 1 })
  t.deepEqual(r.end, { numqueues: 4, numdisabled: 0 })
})

rootTest('persist + owner: uid 65534 without capabilities attaches; another uid gets EPERM', async (t) => {
  const repo = join(__dirname, '..')
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'persistOwner', [65534, 65533, repo]))
  t.true(r.persisted.persist)
  t.is(r.persisted.user, 'nobody')
  t.like(r.asOwner, { ok: true, uid: 65534, ifname: 'vmp0', fds: 2 })
  t.like(r.asOther, { ok: false, uid: 65533, code: 'EPERM' })
  t.regex(r.asOther.message, /belongs to uid 65534/)
  t.true(r.stillThere, 'a persistent device outlives its fds')
  t.true(r.goneAfterDelete)
})

rootTest('an existing persistent device is attached to and deleteTap removes it', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'existingPersistent'))
  t.deepEqual(r.attached, { ifname: 'vmx0', numqueues: 3 })
  t.true(r.survived)
  t.like(r.wrong as Err, { code: 'EINVAL' })
  t.regex((r.wrong as Err)!.message, /vmx0 already exists with multi_queue/)
  t.true(r.mqGone)
  t.true(r.sqGone)
  t.like(r.missing as Err, { code: 'ENODEV' })
})

rootTest('every failure path closes what it opened: no fd, no device, no persistent leftover', async (t) => {
  const r = await withNetns((ns) => runIn<Record<string, any>>(ns, scenario, 'failuresLeaveNothing'))
  t.like(r.cases.noBridge as Err, { code: 'ENODEV', syscall: 'ioctl(SIOCBRADDIF)' })
  t.like(r.cases.mtuTooBig as Err, { code: 'EINVAL', syscall: 'ioctl(SIOCSIFMTU)' })
  t.like(r.cases.persistThenFail as Err, { code: 'EOPNOTSUPP' })
  t.like(r.cases.exclusiveTaken as Err, { code: 'EBUSY' })
  t.is(r.fdsAfter, r.fdsBefore)
  t.deepEqual(r.linksAfter, r.linksBefore)
})

rootTest(
  'uniqueName: vmtap never hands out a freed name again and skips taken ones (the kernel does reuse)',
  async (t) => {
    const r = await withNetns((ns) => runIn<Record<string, string>>(ns, scenario, 'uniqueNames'))
    t.regex(r.first, /^vnet\d+$/)
    t.not(r.second, r.first)
    t.is(Number(r.second.slice(4)), Number(r.first.slice(4)) + 1)
    t.is(Number(r.third.slice(4)), Number(r.second.slice(4)) + 2, `skips ${r.taken}`)
    t.is(r.k1, r.k2, 'the kernel reuses a freed name at once')
  },
)

rootTest('bridge: a frame written on one tap queue fd comes out of the other device fd', async (t) => {
  const r = await withNetns((ns) =>
    runIn<{ written: number; sent: string; got: { frame: string } | null }>(ns, scenario, 'bridgeTraffic'),
  )
  t.is(r.written, 10 + r.sent.length / 2)
  t.truthy(r.got, 'the frame arrived')
  t.is(r.got!.frame, r.sent)
})

test('hostMacFor follows libvirt: first octet fe, or fa when it already is fe', (t) => {
  t.is(hostMacFor('52:54:00:12:34:56'), 'fe:54:00:12:34:56')
  t.is(hostMacFor('FE:54:00:12:34:56'), 'fa:54:00:12:34:56')
  t.throws(() => hostMacFor('01:00:5e:00:00:01'), { code: 'ERR_INVALID_ARG_VALUE' })
  t.throws(() => hostMacFor('52:54:00:12:34'), { code: 'ERR_INVALID_ARG_VALUE' })
})

type Bad = [string, OpenTapOptions, string]
const badConfig: Bad[] = [
  ['mtu 67', { mtu: 67 }, 'ERR_OUT_OF_RANGE'],
  ['mtu 65536', { mtu: 65536 }, 'ERR_OUT_OF_RANGE'],
  ['mtu 1500.5', { mtu: 1500.5 }, 'ERR_OUT_OF_RANGE'],
  ['a multicast mac', { mac: '01:00:5e:00:00:01' }, 'ERR_INVALID_ARG_VALUE'],
  ['a malformed mac', { mac: '52:54:00:12:34' }, 'ERR_INVALID_ARG_VALUE'],
  ['an all-zero mac', { mac: '00:00:00:00:00:00' }, 'ERR_INVALID_ARG_VALUE'],
  ['a bridge template', { bridge: 'br%d' }, 'ERR_INVALID_ARG_VALUE'],
  ['an empty bridge', { bridge: '' }, 'ERR_INVALID_ARG_VALUE'],
  ['vnetHdrSize 11', { vnetHdrSize: 11 as 12 }, 'ERR_OUT_OF_RANGE'],
  ['offloads without csum', { offloads: { tso4: true } }, 'ERR_INVALID_ARG_VALUE'],
  ['an unknown offload', { offloads: { gso: true } as never }, 'ERR_INVALID_ARG_VALUE'],
  ['offloads with vnetHdr false', { vnetHdr: false, offloads: { csum: true } }, 'ERR_INVALID_ARG_VALUE'],
  ['owner -1', { owner: -1 }, 'ERR_OUT_OF_RANGE'],
  ['owner 2**32-1', { owner: 2 ** 32 - 1 }, 'ERR_OUT_OF_RANGE'],
  ["persist 'yes'", { persist: 'yes' as never }, 'ERR_INVALID_ARG_TYPE'],
  ['uniqueName with an exact name', { name: 'vm0', uniqueName: true }, 'ERR_INVALID_ARG_VALUE'],
]
for (const [what, options, code] of badConfig) {
  test(`openTap refuses ${what} (${code}) before any syscall`, (t) => {
    const n = native() as unknown as Record<string, unknown>
    const open = n.open
    let calls = 0
    n.open = () => {
      calls++
      throw new Error('reached the addon')
    }
    try {
      t.throws(() => openTap(options), { code })
    } finally {
      n.open = open
    }
    t.is(calls, 0)
  })
}

test('offload constants match <linux/if_tun.h>', (t) => {
  t.like(constants, {
    TUN_F_CSUM: 1,
    TUN_F_TSO4: 2,
    TUN_F_TSO6: 4,
    TUN_F_TSO_ECN: 8,
    TUN_F_UFO: 0x10,
    TUN_F_USO4: 0x20,
    TUN_F_USO6: 0x40,
  })
})
