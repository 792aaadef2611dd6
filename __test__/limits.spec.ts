// One rule in one place: the TypeScript layer's limits are the core's, and
// what the API refuses before any syscall the core refuses too (called
// straight through the addon, bypassing the TypeScript checks).
import test from 'ava'

import { limits, openTap } from '../index'
import { native } from '../lib/native'
import { validateAddress, validateRoute } from '../lib/net'
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
    'an address with a prefix longer than its family',
    { addresses: ['192.0.2.1/33'] },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, addresses: ['192.0.2.1/33'] }],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'a route destination with host bits',
    { routes: ['192.0.2.5/24'], up: true },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, up: true, routes: ['192.0.2.5/24'] }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'routes without up',
    { routes: ['192.0.2.2/32'] },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, routes: ['192.0.2.2/32'] }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'more addresses than the maximum',
    { addresses: Array.from({ length: limits.maxAddresses + 1 }, (_, i) => `10.0.${i >> 8}.${i & 255}/32`) },
    [
      '',
      1,
      'auto',
      false,
      null,
      null,
      {
        ...NO_CONFIG,
        addresses: Array.from({ length: limits.maxAddresses + 1 }, (_, i) => `10.0.${i >> 8}.${i & 255}/32`),
      },
    ],
    'ERR_OUT_OF_RANGE',
  ],
  [
    'an address twice',
    { addresses: ['192.0.2.1/32', '192.0.2.1/24'] },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, addresses: ['192.0.2.1/32', '192.0.2.1/24'] }],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'bridgePort without bridge',
    { bridgePort: { isolated: true } },
    [
      '',
      1,
      'auto',
      false,
      null,
      null,
      { ...NO_CONFIG, bridgePort: { isolated: true, learning: null, unicastFlood: null, hairpin: null } },
    ],
    'ERR_INVALID_ARG_VALUE',
  ],
  [
    'txQueueLen over the maximum',
    { txQueueLen: limits.maxTxQueueLen + 1 },
    ['', 1, 'auto', false, null, null, { ...NO_CONFIG, txQueueLen: limits.maxTxQueueLen + 1 }],
    'ERR_OUT_OF_RANGE',
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

// The core's table (crates/tap/src/rules_tests.rs, CIDR_CASES): the same input,
// what an address and a route make of it. TypeScript (lib/net.ts) and the
// core must agree on every one.
const CIDR_CASES: [string, string, string][] = [
  ['192.0.2.1/32', 'ok', 'ok'],
  ['192.0.2.1', 'ok', 'ok'],
  ['192.0.2.1/24', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.0/24', 'ok', 'ok'],
  ['0.0.0.0/0', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['10.0.0.1/0', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/33', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE'],
  ['192.0.2.1/999', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE'],
  ['192.0.2.1/1000', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/032', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/+3', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/ 3', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2.1/3/4', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.02.1/32', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['192.0.2/24', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['256.0.2.1', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  [' 192.0.2.1', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['/32', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['224.0.0.1/32', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['255.255.255.255', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['127.0.0.2/8', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['2001:db8::1/64', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['2001:db8::/64', 'ok', 'ok'],
  ['2001:DB8::2', 'ok', 'ok'],
  ['2001:db8::1/128', 'ok', 'ok'],
  ['2001:db8::1/129', 'ERR_OUT_OF_RANGE', 'ERR_OUT_OF_RANGE'],
  ['::/0', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['::1', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['ff02::1', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['fe80::1/64', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['fe80::1%eth0', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['[2001:db8::1]', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['::ffff:192.0.2.1', 'ok', 'ok'],
  ['::ffff:192.0.02.1', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['1:2:3:4:5:6:7::', 'ok', 'ok'],
  ['1:2:3:4:5:6:7:8:9', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['1::2::3', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['12345::', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['2001:db8:0:0:1:0:0:1/64', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['2001:db8::/32', 'ok', 'ok'],
  ['2001:db8:8000::/33', 'ok', 'ok'],
  ['2001:db8:8000::/32', 'ok', 'ERR_INVALID_ARG_VALUE'],
  // More of the grammar (Rust's std::net parser is the core's).
  ['1:2:3:4::5:6:7:8', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['::1.2.3.4', 'ok', 'ok'],
  ['1.2.3.4::', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['::1:2:3:4:5:6:1.2.3.4', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['::1:2:3:4:5:1.2.3.4', 'ok', 'ok'],
  [':1::', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  [':::', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['1:::2', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['0:0:0:0:0:0:0::', 'ERR_INVALID_ARG_VALUE', 'ok'],
  ['1:2:3:4:5:6:7', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['a:b:c:d:e:f:1.2.3.4/96', 'ok', 'ERR_INVALID_ARG_VALUE'],
  ['::1:2:3:4:5:6:7:8', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['1::2:3:4:5:6:7', 'ok', 'ok'],
  ['1:2:3:4:5:6:7:', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['::ffff:1.2.3.4:5', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
  ['g::', 'ERR_INVALID_ARG_VALUE', 'ERR_INVALID_ARG_VALUE'],
]

/** What TypeScript says of `f(value)`: 'ok' or the error code. */
function tsCode(f: () => unknown): string {
  try {
    f()
    return 'ok'
  } catch (e) {
    return (e as { code: string }).code
  }
}

/**
 * What the core says, through the addon's open(): the config carries the
 * CIDR and queues 0, which the core refuses after it has parsed the CIDR;
 * an error about queues means the CIDR passed.
 */
function coreCode(kind: 'addresses' | 'routes', value: string): string {
  try {
    native().open('', 0, 'auto', false, null, null, { ...NO_CONFIG, up: true, [kind]: [value] })
    return 'opened?'
  } catch (e) {
    const err = e as { code: string; message: string }
    return /queues/.test(err.message) ? 'ok' : err.code
  }
}

test('addresses and routes in CIDR form: TypeScript and the core agree on every case of the shared table', (t) => {
  for (const [input, address, route] of CIDR_CASES) {
    t.is(
      tsCode(() => validateAddress(input, 'cidr')),
      address,
      `address ${JSON.stringify(input)} (TypeScript)`,
    )
    t.is(coreCode('addresses', input), address, `address ${JSON.stringify(input)} (core)`)
    t.is(
      tsCode(() => validateRoute(input, 'dest')),
      route,
      `route ${JSON.stringify(input)} (TypeScript)`,
    )
    t.is(coreCode('routes', input), route, `route ${JSON.stringify(input)} (core)`)
  }
})
