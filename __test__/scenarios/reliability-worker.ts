// A worker thread of the concurrency scenario (reliability.ts): open and
// close `perWorker` devices named from `template` with uniqueName (vmtap's
// counter is process-wide, so every name in the process is new), checking
// each fd is attached to the device it was returned with. Every fourth
// device goes through openTapAsync/closeAsync (the libuv pool), the rest
// through openTap/close on this thread.
import { readFileSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'

import { openTap, openTapAsync, type TapDevice } from '../../index'

const { perWorker, template } = workerData as { perWorker: number; template: string }
const iff = (fd: number) => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^iff:\s+(\S+)$/m)?.[1]

async function main() {
  const names: string[] = []
  const errors: string[] = []
  for (let i = 0; i < perWorker; i++) {
    try {
      const async = i % 4 === 3
      const d: TapDevice = async
        ? await openTapAsync({ name: template, uniqueName: true, queues: 2 })
        : openTap({ name: template, uniqueName: true, queues: 2 })
      for (const fd of d.tapFds)
        if (iff(fd) !== d.ifname) errors.push(`${d.ifname}: fd ${fd} is attached to ${iff(fd)}`)
      names.push(d.ifname)
      if (async) await d.closeAsync()
      else d.close()
    } catch (e) {
      errors.push(String((e as Error)?.stack ?? e))
    }
  }
  parentPort!.postMessage({ names, errors })
}

main().catch((e) => {
  parentPort!.postMessage({ names: [], errors: [String(e?.stack ?? e)] })
})
