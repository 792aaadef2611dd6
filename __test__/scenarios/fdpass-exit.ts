// A child process for fdpass.spec.ts: it waits in recvFds (no timeout) on a
// socket whose peer never sends, then calls process.exit(0). It prints
// "waiting" first, and "exiting" right before the exit.
import { recvFds } from '../../index'
import { socketPair } from '../socketpair'

async function main() {
  const p = await socketPair()
  recvFds(p.server).catch(() => undefined)
  process.stdout.write('waiting\n')
  setImmediate(() => {
    process.stdout.write('exiting\n')
    process.exit(0)
  })
}

main()
