// A child process for fdpass.spec.ts: it makes a socket pair whose peer sent
// 5 bytes, prints its address-space size (VmSize, KiB) and waits for "go" on
// stdin; the test lowers its RLIMIT_AS meanwhile (prlimit). Then one recvFds
// with maxBytes 2**30 (a GiB the limit does not allow) must read the 5 bytes.
import { readFileSync } from 'node:fs'

import { recvFds } from '../../index'
import { socketPair } from '../socketpair'

async function main() {
  const p = await socketPair()
  p.client.write('hello')
  const vm = readFileSync('/proc/self/status', 'utf8').match(/^VmSize:\s+(\d+) kB$/m)?.[1]
  process.stdout.write(`vmsize ${vm}\n`)
  await new Promise<void>((r) => process.stdin.once('data', () => r()))
  process.stdin.pause()
  const got = await recvFds(p.server, { maxBytes: 2 ** 30, timeoutMs: 10000 })
  process.stdout.write(`received ${got.data.toString()}\n`)
  p.close()
}

main().catch((e) => {
  process.stdout.write(`error ${e?.code} ${e?.message}\n`)
  process.exitCode = 1
})
