// `vmtap delete`: remove a persistent TAP or TUN device, or a macvtap.

import type { Command } from 'commander'

import { deleteTap } from '../index'
import { isArgError, UsageError } from './errors'
import { addNetnsFlag } from './flags'

export function runDelete(name: string, o: { netns?: string } = {}): void {
  try {
    deleteTap(name, o.netns === undefined ? {} : { netns: o.netns })
  } catch (e) {
    if (isArgError(e))
      throw new UsageError(e.message.replace(/'name'/, 'NAME').replace(/options\.netns/, '--netns'), e.code)
    throw e
  }
}

const DELETE_HELP = `
Removes a persistent TAP or TUN device (TUNSETPERSIST 0): it goes now, or when the
last process holding it closes it. A macvtap (vmtap create --macvtap) is deleted
at once (RTM_DELLINK), even while a process holds its fds. ENODEV when there is
no such device. With --netns, the device of that name in that network namespace.

Examples:
  vmtap delete vm0
  vmtap delete --netns blue vm0
`

/** Add `delete` to the program. */
export function addDeleteCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('delete')
    .description('delete a persistent TAP or TUN device, or a macvtap')
    .argument('<name>', 'the device')
  addNetnsFlag(cmd)
    .addHelpText('after', DELETE_HELP)
    .action((name: string, o: { netns?: string }) => {
      runDelete(name, o)
      onStatus(0)
    })
}
