// A worker thread for fdpass.spec.ts: it waits in recvFds (no timeout) on
// the raw socket fd it is given, and says so. The test then terminates it.
import { parentPort, workerData } from 'node:worker_threads'

import { recvFds } from '../../index'

const { fd } = workerData as { fd: number }
recvFds(fd).then(
  (r) => parentPort!.postMessage({ received: r.data.toString() }),
  (e) => parentPort!.postMessage({ error: String(e?.code ?? e) }),
)
parentPort!.postMessage('waiting')
