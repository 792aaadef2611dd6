// `vmtap holders`: the processes holding a TUN/TAP device.

import type { Command } from 'commander'

import { listTaps, type TapHolder, tapHolders } from '../index'
import { isArgError, UsageError } from './errors'

/** `vmtap holders NAME --json`, schema 1. */
export interface HoldersReport {
  schema: 1
  ifname: string
  holders: TapHolder[]
}

/** The holders of `name`, a device of this namespace (else an ENODEV error). */
export function runHolders(name: string): HoldersReport {
  let holders: TapHolder[]
  try {
    holders = tapHolders(name)
  } catch (e) {
    if (isArgError(e)) throw new UsageError(e.message.replace(/'name'/, 'NAME'), e.code)
    throw e
  }
  if (!listTaps().some((t) => t.ifname === name)) {
    throw Object.assign(new Error(`there is no TUN/TAP device ${name} in this network namespace`), {
      code: 'ENODEV',
    })
  }
  return { schema: 1, ifname: name, holders }
}

/** The human form: one line per process, or "not held". */
export function holdersText(r: HoldersReport): string {
  if (r.holders.length === 0) return `${r.ifname}: not held by any process this one can see\n`
  const rows = [['PID', 'COMMAND', 'FDS'], ...r.holders.map((h) => [String(h.pid), h.command, h.fds.join(',')])]
  const w = [0, 1].map((i) => Math.max(...rows.map((row) => row[i].length)))
  return `${rows.map((row) => `${row[0].padEnd(w[0])}  ${row[1].padEnd(w[1])}  ${row[2]}`).join('\n')}\n`
}

const HOLDERS_HELP = `
The processes with an fd attached to the device NAME (the "iff:" line of
/proc/PID/fdinfo/FD), in pid order: the answer to "Device or resource busy". It walks
every process's fds; without root, other users' processes are not seen. fdinfo does not
say which network namespace a device is in: a process holding a device of the same name
in another namespace is listed too. ENODEV when NAME is not a TUN/TAP device here.

--json prints { schema: 1, ifname: string, holders: [{ pid, command, fds: number[] }] }.

Example:
  vmtap holders vm0
`

/** Add `holders` to the program. */
export function addHoldersCommand(program: Command, onStatus: (status: number) => void): void {
  program
    .command('holders')
    .description('show the processes holding a TUN/TAP device')
    .argument('<name>', 'the device')
    .option('--json', 'print JSON (schema 1)')
    .addHelpText('after', HOLDERS_HELP)
    .action((name: string, opts: { json?: boolean }) => {
      const r = runHolders(name)
      process.stdout.write(opts.json ? `${JSON.stringify(r, null, 2)}\n` : holdersText(r))
      onStatus(0)
    })
}
