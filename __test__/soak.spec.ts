// Soak: many open/close cycles of 4-queue devices through
// openTapAsync + closeAll, inside a network namespace of the test's own: the
// fd count and the links come back exactly, and memory stays flat after a
// warm-up. VMTAP_SOAK_CYCLES runs a longer variant (e.g. 100000);
// VMTAP_SOAK_QUEUES and VMTAP_SOAK_BATCH change the shape, VMTAP_SOAK_RSS_MIB
// the RSS growth bound.
import { rootTest } from './helpers'
import { runIn, withNetns } from './netns'

const cycles = Number(process.env.VMTAP_SOAK_CYCLES ?? 5000)
const queues = Number(process.env.VMTAP_SOAK_QUEUES ?? 4)
const batch = Number(process.env.VMTAP_SOAK_BATCH ?? 50)
/**
 * From the end of the warm-up (500 cycles) to the end, measured after a full GC each time, the RSS outside
 * V8's heap (RSS minus what the JS heap has committed: native memory, the addon's included) may grow by at
 * most this much. V8 itself commits more heap pages under sustained allocation (its young generation grows
 * in steps of several MiB, tens of thousands of cycles apart), which is sizing, not a leak: that growth is
 * logged, and the JS heap in use is bounded separately.
 */
const RSS_GROWTH_BOUND = Number(process.env.VMTAP_SOAK_RSS_MIB ?? 16) * 1024 * 1024
const MiB = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`

interface Mem {
  rss: number
  rssAnon: number
  v8Heap: number
  outsideV8: number
  heapUsed: number
  external: number
}
interface Soak {
  cycles: number
  ms: number
  warm: number
  fds0: number
  fdsWarm: number
  fdsEnd: number
  links0: string[]
  linksEnd: string[]
  atWarm: Mem
  end: Mem
  samples: ({ cycles: number; fds: number; links: number; ms: number } & Mem)[]
  bad: string[]
}

rootTest(
  `soak: ${cycles} open/close cycles of ${queues}-queue devices (openTapAsync + closeAll, batches of ${batch}): fds, links and memory stay flat`,
  async (t) => {
    // About 1.5 ms a cycle here; allow for slow machines, and for the long variants.
    t.timeout(Math.max(120_000, cycles * 20))
    const env = { ...process.env, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --expose-gc`.trim() }
    const r = await withNetns((ns) =>
      runIn<Soak>(ns, 'scenarios/reliability.ts', 'soak', [cycles, queues, batch], { env }),
    )
    t.is(r.cycles, cycles)
    t.deepEqual(r.bad, [], 'every device had the queues asked for')
    for (const s of r.samples) {
      t.log(
        `${String(s.cycles).padStart(7)} cycles ${String(s.ms).padStart(7)} ms  fds ${s.fds}  links ${s.links}  rss ${MiB(s.rss)} (anon ${MiB(s.rssAnon)}, V8 heap ${MiB(s.v8Heap)}, outside it ${MiB(s.outsideV8)})  heap used ${MiB(s.heapUsed)}  external ${MiB(s.external)}`,
      )
    }
    const growth = r.end.outsideV8 - r.atWarm.outsideV8
    t.log(
      `${r.cycles} cycles in ${r.ms} ms (${(r.ms / r.cycles).toFixed(2)} ms a cycle); after ${r.warm} cycles RSS ${MiB(r.atWarm.rss)} ` +
        `(${MiB(r.atWarm.outsideV8)} outside V8's heap), at the end ${MiB(r.end.rss)} (${MiB(r.end.outsideV8)}): ` +
        `RSS growth ${MiB(r.end.rss - r.atWarm.rss)}, of which V8's heap ${MiB(r.end.v8Heap - r.atWarm.v8Heap)}, outside it ${MiB(growth)} (bound ${MiB(RSS_GROWTH_BOUND)})`,
    )
    t.is(r.fdsWarm, r.fds0, 'fd count unchanged after the warm-up')
    t.is(r.fdsEnd, r.fds0, 'fd count unchanged at the end')
    for (const s of r.samples) t.is(s.fds, r.fds0, `fd count at ${s.cycles} cycles`)
    t.deepEqual(r.linksEnd, r.links0, 'no link left')
    for (const s of r.samples) t.is(s.links, r.links0.length, `link count at ${s.cycles} cycles`)
    t.true(
      growth < RSS_GROWTH_BOUND,
      `RSS outside V8's heap grew ${MiB(growth)} after the warm-up (bound ${MiB(RSS_GROWTH_BOUND)})`,
    )
    t.true(
      r.end.heapUsed - r.atWarm.heapUsed < 4 * 1024 * 1024,
      `the JS heap grew ${MiB(r.end.heapUsed - r.atWarm.heapUsed)}`,
    )
    t.true(
      r.end.external - r.atWarm.external < 1024 * 1024,
      `external memory grew ${MiB(r.end.external - r.atWarm.external)}`,
    )
  },
)
