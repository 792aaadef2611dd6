// How the vmtap command reports failure: one line on stderr,
// `vmtap: <message> (<code>)`, and an exit status that says what kind: 2
// usage (bad flags or values, including the library's TypeError/RangeError),
// 1 system (TapError, spawn failure), 127 a command that does not exist.

import { CommanderError } from 'commander'

import { TapError } from '../index'

export const EXIT_SYSTEM = 1
const EXIT_USAGE = 2
export const EXIT_NOT_FOUND = 127

/** A mistake in how vmtap was called: exit 2. */
export class UsageError extends Error {
  readonly code: string
  constructor(message: string, code = 'ERR_USAGE') {
    super(message)
    this.code = code
  }
}

/** The command of `exec` could not be started. */
export class SpawnError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly exitCode: number,
  ) {
    super(message)
  }
}

const ARG_ERROR_CODES = new Set(['ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE', 'ERR_OUT_OF_RANGE'])

/** The library's argument errors (TypeError/RangeError with a Node-style code). */
export function isArgError(e: unknown): e is Error & { code: string } {
  return (e instanceof TypeError || e instanceof RangeError) && ARG_ERROR_CODES.has((e as { code?: string }).code ?? '')
}

/** One line: newlines (and the blanks around them) become '; '. */
function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, '; ')
}

/** The one line vmtap prints for `e`, and the exit status. */
export function describeError(e: unknown): { line: string; status: number } {
  const line = (message: string, code: string) => `vmtap: ${oneLine(message)} (${code})`
  if (e instanceof CommanderError) {
    // commander's "error: unknown option '--queue'\n(Did you mean --queues?)"
    const msg = e.message.replace(/^error: /, '').replace(/\n\((Did you mean [^)]*)\)/, '; $1')
    return { line: line(msg, 'ERR_USAGE'), status: EXIT_USAGE }
  }
  if (e instanceof UsageError) return { line: line(e.message, e.code), status: EXIT_USAGE }
  if (isArgError(e)) return { line: line(e.message, e.code), status: EXIT_USAGE }
  if (e instanceof SpawnError) return { line: line(e.message, e.code), status: e.exitCode }
  if (e instanceof TapError) return { line: line(e.message, e.code), status: EXIT_SYSTEM }
  const err = e as { message?: unknown; code?: unknown }
  const message = typeof err?.message === 'string' ? err.message : String(e)
  const code = typeof err?.code === 'string' ? err.code : 'ERR_VMTAP_CLI'
  return { line: line(message, code), status: EXIT_SYSTEM }
}

// The library names options as the API spells them ("options.vnetHdr");
// say which flag it was instead.
const FLAG_OF: Readonly<Record<string, string>> = {
  name: 'name',
  queues: 'queues',
  vnetHdr: 'vnet-hdr',
  vhost: 'vhost',
  bridge: 'bridge',
  mtu: 'mtu',
  mac: 'mac',
  up: 'up',
  persist: 'persist',
  owner: 'owner',
  group: 'group',
  netns: 'netns',
  tag: 'tag',
  link: 'macvtap',
  mode: 'macvtap-mode',
  addresses: 'address',
  routes: 'route',
  proxyArp: 'proxy-arp',
  proxyNdp: 'proxy-ndp',
  forwarding: 'forwarding',
  txQueueLen: 'txqueuelen',
  bridgePort: 'bridge-port',
}

/** Rewrite `options.<key>` in a library argument error as the flag (or --net key) it came from. */
export function renameOptions(e: unknown, netIndex: number | null): unknown {
  if (!isArgError(e)) return e
  const msg = e.message.replace(/\boptions\.([A-Za-z]+)/g, (whole, key: string) => {
    const flag = FLAG_OF[key]
    if (!flag) return whole
    return netIndex === null ? `--${flag}` : `--net[${netIndex}] ${flag}`
  })
  return new UsageError(msg, e.code)
}
