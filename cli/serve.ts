// `vmtap serve`: the privileged broker. Opens TAP devices for unprivileged
// clients (requestTap, vmtap bridge-helper) as its policy allows.

import type { Command } from 'commander'

import { type Broker, createBroker, loadPolicy, type Policy, PolicyError } from '../index'
import { UsageError } from './errors'
import { parseInteger } from './flags'
import { hasCapNetAdmin } from './probe'

export interface ServeFlags {
  socket: string
  policy: string
  socketMode: number
  maxConnections?: number
  maxConnectionsPerUid?: number
  requestTimeout?: number
}

/** An octal file mode, like chmod's: 666, 0660. */
function parseMode(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value))
    throw new UsageError(`--socket-mode must be an octal mode like 666 or 0660, got ${value}`)
  return parseInt(value, 8)
}

function policyOrUsage(file: string): Policy {
  try {
    return loadPolicy(file)
  } catch (e) {
    if (e instanceof PolicyError) throw new UsageError(e.message, e.code)
    throw e
  }
}

const say = (line: string) => process.stderr.write(`vmtap serve: ${line}\n`)

/** Serve until SIGTERM or SIGINT; SIGHUP reloads the policy (an invalid one is refused, the old one kept). */
export async function runServe(o: ServeFlags): Promise<void> {
  if (hasCapNetAdmin() === false) {
    throw Object.assign(
      new Error('vmtap serve needs CAP_NET_ADMIN to create devices and enslave them to bridges (run it as root)'),
      { code: 'EPERM' },
    )
  }
  const policy = policyOrUsage(o.policy)
  let broker: Broker
  try {
    broker = createBroker({
      socketPath: o.socket,
      policy,
      socketMode: o.socketMode,
      maxConnections: o.maxConnections,
      maxConnectionsPerUid: o.maxConnectionsPerUid,
      requestTimeoutMs: o.requestTimeout,
    })
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/options\.(\w+)/, '--$1'), (e as { code?: string }).code)
  }
  // The signal handlers go in before the socket exists (and before the line
  // that says so): a signal right after it must find them.
  let stopped!: () => void
  const done = new Promise<void>((resolve) => (stopped = resolve))
  const reload = () => {
    try {
      const next = loadPolicy(o.policy)
      broker.setPolicy(next)
      say(`policy reloaded: ${next.rules.length} rule(s) from ${o.policy}`)
    } catch (e) {
      say(`policy NOT reloaded, the previous one stays in force: ${(e as Error).message}`)
    }
  }
  let stopping = false
  const stop = (signal: NodeJS.Signals) => {
    stopping = true
    say(`${signal}: stopping`)
    process.off('SIGTERM', stop)
    process.off('SIGINT', stop)
    process.off('SIGHUP', reload)
    broker.close().then(stopped, stopped)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.on('SIGHUP', reload)
  try {
    await broker.listen()
  } catch (e) {
    process.off('SIGTERM', stop)
    process.off('SIGINT', stop)
    process.off('SIGHUP', reload)
    throw e
  }
  if (!stopping) {
    say(`listening on ${o.socket} (mode ${o.socketMode.toString(8)}), ${policy.rules.length} rule(s) from ${o.policy}`)
  }
  await done
  say('stopped; socket removed')
}

const SERVE_HELP = `
Runs the broker: listens on the Unix socket PATH, identifies each client by the
kernel's record of it (SO_PEERCRED: uid, gid, pid; SO_PEERGROUPS: groups), checks
its request against the policy FILE, opens the device and sends the fds back
(SCM_RIGHTS). Needs CAP_NET_ADMIN (root). Clients: requestTap() from the library,
or vmtap bridge-helper for QEMU's -netdev bridge.

One JSON line per connection on stdout: {"time","event":"grant"|"refuse"|"fail",
"uid","gid","pid","request","rule","result"}. Keep stdout drained (a file or the
journal): a full pipe blocks the broker. Notes on stderr.

SIGTERM/SIGINT: stop (requests being served finish; the socket is removed).
SIGHUP: reload FILE; an invalid one is refused and the old policy stays.

The socket is mode 666 by default: the policy is the access control. Put it in
a directory only root can write to (e.g. /run/vmtap/), so nobody can replace it.

Example policy (README.md, "Policy file", documents every field):
  { "allow": [ { "user": "qemu", "bridges": ["br0"], "maxQueues": 4 },
               { "group": "kvm", "bridges": ["br1"], "vhost": true } ] }

Example:
  vmtap serve --socket /run/vmtap/broker.sock --policy /etc/vmtap/policy.json
`

/** Add `serve` to the program. */
export function addServeCommand(program: Command, onStatus: (status: number) => void): void {
  program
    .command('serve')
    .description('run the broker: TAP devices for unprivileged VMMs, by policy (needs CAP_NET_ADMIN)')
    .usage('--socket PATH --policy FILE [options]')
    .requiredOption('--socket <path>', 'the Unix socket to listen on')
    .requiredOption('--policy <file>', 'the policy (JSON)')
    .option('--socket-mode <mode>', "the socket's mode (octal)", parseMode, 0o666)
    .option('--max-connections <n>', 'connections at once (default 128)', parseInteger)
    .option('--max-connections-per-uid <n>', 'connections at once from one uid (default 32)', parseInteger)
    .option('--request-timeout <ms>', "a connection's deadline (default 5000)", parseInteger)
    .addHelpText('after', SERVE_HELP)
    .action(async (opts: ServeFlags) => {
      await runServe(opts)
      onStatus(0)
    })
}
