// The vmtap command: TAP devices for VMs from the shell.
//
//   vmtap probe [--json]                 what this host supports
//   vmtap exec [options] -- CMD ARGS...  open TAP device(s), run CMD with the fds
//   vmtap create --persist --name N ...  a persistent device (like ip tuntap add)
//   vmtap delete N                       remove a persistent device
//   vmtap list [--json]                  the TUN/TAP devices of this namespace
//   vmtap holders N [--json]             the processes holding a device
//   vmtap gc [--tag T] [--dry-run]       remove unheld tagged persistent devices
//   vmtap serve --socket P --policy F    the broker: devices for unprivileged VMMs
//   vmtap bridge-helper --socket P ...   QEMU's -netdev bridge helper, via the broker
//
// Built only on the library's public API (../index); commander parses. One
// file per command; errors.ts says how failures are reported.

import { readFileSync } from 'node:fs'
import { join } from 'node:path'

import { Command, CommanderError } from 'commander'

import { addBridgeHelperCommand } from './bridge-helper'
import { addCreateCommand } from './create'
import { addDeleteCommand } from './delete'
import { describeError, UsageError } from './errors'
import { addExecCommand } from './exec'
import { addGcCommand } from './gc'
import { addHoldersCommand } from './holders'
import { addListCommand } from './list'
import { addProbeCommand } from './probe'
import { addServeCommand } from './serve'

function packageVersion(): string {
  for (const p of [join(__dirname, '..', 'package.json'), join(__dirname, '..', '..', 'package.json')]) {
    try {
      const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string }
      if (pkg.name === 'vmtap' && pkg.version) return pkg.version
    } catch {
      // try the next
    }
  }
  return 'unknown'
}

const MAIN_HELP = `
Exit status: 0 success, 1 system error (the kernel refused: TapError), 2 usage
error; vmtap exec exits with its command's status.

Examples:
  vmtap probe
  vmtap exec --queues 4 -- qemu-system-x86_64 ... -netdev {netdev} -device virtio-net-pci,netdev=net0,mq=on,vectors=10
  vmtap create --persist --name vm0 --queues 4 --owner 1000
  vmtap delete vm0
  vmtap list
  vmtap holders vm0
  vmtap gc --tag ci --dry-run
  vmtap serve --socket /run/vmtap/broker.sock --policy /etc/vmtap/policy.json
  qemu-system-x86_64 ... -netdev bridge,id=n0,br=br0,helper="vmtap bridge-helper --socket /run/vmtap/broker.sock"
`

const COMMANDS = 'probe, exec, create, delete, list, holders, gc, serve and bridge-helper'

/** The commander program; `onStatus` receives the exit status of the command that ran. */
export function buildProgram(onStatus: (status: number) => void): Command {
  const program = new Command('vmtap')
  program
    .description(
      'Linux TAP devices for virtual machines: multi-queue, vnet_hdr, vhost-net fds handed to QEMU or cloud-hypervisor',
    )
    .version(packageVersion(), '-V, --version')
    .enablePositionalOptions()
    .exitOverride()
    // Errors are reported as one line by run(); writeErr is only help shown
    // for an error (vmtap help nosuch), reported as one line too.
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .addHelpText('after', MAIN_HELP)
  addProbeCommand(program, onStatus)
  addExecCommand(program, onStatus)
  addCreateCommand(program, onStatus)
  addDeleteCommand(program, onStatus)
  addListCommand(program, onStatus)
  addHoldersCommand(program, onStatus)
  addGcCommand(program, onStatus)
  addServeCommand(program, onStatus)
  addBridgeHelperCommand(program, onStatus)
  return program
}

/** Run the command line `argv` (without node and the script); resolves with the exit status. */
export async function run(argv: readonly string[]): Promise<number> {
  let status = 0
  const program = buildProgram((s) => {
    status = s
  })
  try {
    if (argv.length === 0) throw new UsageError(`no command; the commands are ${COMMANDS} (see 'vmtap --help')`)
    await program.parseAsync([...argv], { from: 'user' })
    return status
  } catch (e) {
    if (e instanceof CommanderError && e.exitCode === 0) return 0 // --help, help, --version
    let err = e
    if (e instanceof CommanderError && e.code === 'commander.help') {
      // help for an error: no command, or `vmtap help nosuch`
      err = new UsageError(`no command, or an unknown one; the commands are ${COMMANDS} (see 'vmtap --help')`)
    }
    const { line, status: s } = describeError(err)
    process.stderr.write(`${line}\n`)
    if (process.env.VMTAP_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`)
    return s
  }
}
