// Scenarios for async.spec.ts: each runs as root in a network namespace the
// test created (../netns.ts), in a process of its own, and returns what it saw.
import { readdirSync, readFileSync } from 'node:fs'

import { closeAll, openTap, openTapAsync, type TapDevice } from '../../index'
import { native } from '../../lib/native'

const iffOf = (fd: number) => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1] ?? null
const links = () => readdirSync('/sys/class/net').sort()

/**
 * 40 openTapAsync calls made together, one of them refused by the kernel
 * (a held single-queue device: EBUSY): how they reached the addon (openBatch
 * calls, their sizes, how many were in flight at once) and what each got.
 */
export async function batched(): Promise<Record<string, unknown>> {
  const n = native() as unknown as Record<string, (...a: unknown[]) => unknown>
  const real = n.openBatch
  const sizes: number[] = []
  let inFlight = 0
  let maxInFlight = 0
  n.openBatch = (list: unknown) => {
    sizes.push((list as unknown[]).length)
    inFlight++
    maxInFlight = Math.max(maxInFlight, inFlight)
    const p = real(list) as Promise<unknown>
    const done = () => {
      inFlight--
    }
    p.then(done, done)
    return p
  }
  const held = openTap({ name: 'abheld' })
  const links0 = links()
  try {
    const names = Array.from({ length: 40 }, (_, i) => (i === 21 ? 'abheld' : `ab${i}`))
    const settled = await Promise.allSettled(names.map((name) => openTapAsync({ name, vnetHdr: true })))
    const opened = settled
      .filter((r): r is PromiseFulfilledResult<TapDevice> => r.status === 'fulfilled')
      .map((r) => r.value)
    const refused = settled.flatMap((r, i) =>
      r.status === 'rejected'
        ? [{ i, code: (r.reason as { code?: string }).code, name: r.reason?.constructor?.name }]
        : [],
    )
    const right = opened.every((d) => d.tapFds.length === 1 && iffOf(d.tapFds[0]) === d.ifname)
    const order = opened.map((d) => d.ifname)
    await closeAll(opened)
    // Bad options reject before reaching the addon; the others still open.
    const before = sizes.length
    const mixed = await Promise.allSettled([
      openTapAsync({ queues: 0 }),
      openTapAsync({ name: 'abok' }),
      openTapAsync({ bogus: 1 } as never),
    ])
    const mixedOut = mixed.map((r) => (r.status === 'fulfilled' ? r.value.ifname : (r.reason as { code: string }).code))
    for (const r of mixed) if (r.status === 'fulfilled') r.value.close()
    return {
      sizes: sizes.slice(0, before),
      maxInFlight,
      refused,
      openedCount: opened.length,
      right,
      order,
      expectedOrder: names.filter((x) => x !== 'abheld'),
      mixedOut,
      mixedSizes: sizes.slice(before),
      linksBack: JSON.stringify(links()) === JSON.stringify(links0),
    }
  } finally {
    held.close()
    n.openBatch = real
  }
}
