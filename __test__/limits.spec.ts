// One rule in one place: the TypeScript layer's limits are the core's, and
// what the API refuses before any syscall the core refuses too (called
// straight through the addon, bypassing the TypeScript checks).
import test from 'ava'

import { limits, openTap } from '../index'
import { native } from '../lib/native'
import { NO_CONFIG } from './staging'

test('the TypeScript limits equal the core limits read through the addon', (t) => {
  const core = native().limits
  t.deepEqual({ ...core, vnetHdrSizes: [...core.vnetHdrSizes] }, { ...limits, vnetHdrSizes: [...limits.vnetHdrSizes] })
  t.true(Object.isFrozen(core))
})

// [what, openTap options, the addon's open() arguments, the code both give]
const cases: [string, object, Parameters<ReturnType<typeof native>['open']>, string][] = [
  ['queues 0', { queues: 0 }, ['', 0, 'auto', false, null, null, null], 'ERR_OUT_OF_RANGE'],
  [
    'queues over the maximum',
    { queues: limits.maxQueues + 1 },
    ['', limits.maxQueues + 1, 'auto', false, null, null, null],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'mtu below the minimum',
    { mtu: limits.minMtu - 1 },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, mtu: limits.minMtu - 1 }],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'mtu above the maximum',
    { mtu: limits.maxMtu + 1 },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, mtu: limits.maxMtu + 1 }],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'vnetHdrSize 11',
    { vnetHdrSize: 11 },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, vnetHdrSize: 11 }],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'ecn without tso',
    { offloads: { csum: true, ecn: true } },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, offloads: 0x09 }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'uso4 without uso6',
    { offloads: { csum: true, uso4: true } },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, offloads: 0x21 }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'an offload without csum',
    { offloads: { tso4: true } },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, offloads: 0x02 }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'vnetHdrSize with vnetHdr false',
    { vnetHdr: false, vnetHdrSize: 12 },
    ['', 1, false, false, null, null, { ...NO_CONFIG, vnetHdrSize: 12 }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'uniqueName with an exact name',
    { name: 'vm0', uniqueName: true },
    ['vm0', 1, 'auto', false, null, null, { ...NO_CONFIG, uniqueName: true }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'owner over the maximum id',
    { owner: limits.maxId + 1 },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, owner: limits.maxId + 1 }],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'a tag longer than the maximum',
    { tag: 't'.repeat(limits.maxTagBytes + 1) },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, tag: 't'.repeat(limits.maxTagBytes + 1) }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'a tag with a space',
    { tag: 'a b' },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, tag: 'a b' }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'a name longer than the maximum',
    { name: 'x'.repeat(limits.maxNameBytes + 1) },
    ['x'.repeat(limits.maxNameBytes + 1), 1, 'auto', false, null, null, null],
    'ERR_INVALID_ARG_VALUE',
  ],
]

for (const [what, options, args, code] of cases) {
  test(`${what}: refused by the API and by the core with ${code}`, (t) => {
    t.throws(() => openTap(options as never), { code })
    t.throws(() => native().open(...args), { code })
  })
}
