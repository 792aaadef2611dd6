// `vmtap delete`: remove a persistent TAP (or TUN) device.

import type { Command } from 'commander'

import { deleteTap } from '../index'
import { isArgError, UsageError } from './errors'

export function runDelete(name: string): void {
  try {
    deleteTap(name)
  } catch (e) {
    if (isArgError(e)) throw new UsageError(e.message.replace(/'name'/, 'NAME'), e.code)
    throw e
  }
}

const DELETE_HELP = `
Removes a persistent TAP or TUN device (TUNSETPERSIST 0): it goes now, or when the last
process holding it closes it. ENODEV when there is no such device.

Example:
  vmtap delete vm0
`

/** Add `delete` to the program. */
export function addDeleteCommand(program: Command, onStatus: (status: number) => void): void {
  program
    .command('delete')
    .description('delete a persistent TAP or TUN device')
    .argument('<name>', 'the device')
    .addHelpText('after', DELETE_HELP)
    .action((name: string) => {
      runDelete(name)
      onStatus(0)
    })
}
