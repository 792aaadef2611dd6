// Scenarios for adopt.spec.ts, run inside a network namespace the test
// created (as root): fds received over a Unix socket become a TapDevice.
import { closeSync, fstatSync, readdirSync, readFileSync } from 'node:fs'
import { createServer, Socket } from 'node:net'

import { adoptTap, openTap, recvFds, sendFds, TapError } from '../../index'

const exists = (name: string) => readdirSync('/sys/class/net').includes(name)
const cloexec = (fd: number) => {
  const m = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').match(/^flags:\s+([0-7]+)$/m)
  return m ? (parseInt(m[1], 8) & 0o2000000) !== 0 : false
}
const isOpen = (fd: number) => {
  try {
    fstatSync(fd)
    return true
  } catch {
    return false
  }
}

/** A connected pair of Unix stream sockets that Node never reads (both paused). */
async function pair(path: string): Promise<[Socket, Socket, () => void]> {
  const server = createServer({ pauseOnConnect: true })
  await new Promise<void>((r) => server.listen(path, r))
  const accepted = new Promise<Socket>((r) => server.once('connection', r))
  const a = new Socket()
  a.pause()
  await new Promise<void>((r) => a.connect(path, r))
  const b = await accepted
  const done = () => {
    a.destroy()
    b.destroy()
    server.close()
  }
  return [a, b, done]
}

/** Send a device's fds across a socket, close the sender's copies, adopt what arrived. */
export async function adoptReceived(dir: string) {
  const [a, b, done] = await pair(`${dir}/adopt.sock`)
  try {
    const tap = openTap({ name: 'vmtadopt%d', queues: 2, vnetHdr: true })
    const name = tap.ifname
    await sendFds(a, 'x', tap.tapFds)
    const got = await recvFds(b, { maxBytes: 8, maxFds: 8, timeoutMs: 5000 })
    tap.close()
    const existsWhileReceived = exists(name)
    const adopted = adoptTap(got.fds)
    const report = {
      name,
      existsWhileReceived,
      received: got.fds,
      adopted: {
        ifname: adopted.ifname,
        tapFds: [...adopted.tapFds],
        vhostFds: [...adopted.vhostFds],
        multiQueue: adopted.multiQueue,
        vnetHdr: adopted.vnetHdr,
        cloexec: adopted.tapFds.map(cloexec),
        mtu: adopted.getMtu(),
      },
      existsAfterAdopt: exists(name),
      existsAfterClose: true,
      fdsOpenAfterClose: [] as boolean[],
    }
    adopted.close()
    report.existsAfterClose = exists(name)
    report.fdsOpenAfterClose = got.fds.map(isOpen)
    return report
  } finally {
    done()
  }
}

/** Fds of two devices are refused and left to the caller; a disabled queue is adopted as it is. */
export async function adoptMixed(dir: string) {
  const [a, b, done] = await pair(`${dir}/mixed.sock`)
  try {
    const one = openTap({ name: 'vmtadm%d', queues: 2 })
    const two = openTap({ name: 'vmtadm%d', queues: 2 })
    await sendFds(a, 'x', [one.tapFds[0], two.tapFds[1]])
    const got = await recvFds(b, { maxBytes: 8, maxFds: 8, timeoutMs: 5000 })
    const names = [one.ifname, two.ifname]
    one.setQueueEnabled(1, false)
    await sendFds(a, 'y', [one.tapFds[1]])
    const disabled = await recvFds(b, { maxBytes: 8, maxFds: 8, timeoutMs: 5000 })
    one.close()
    two.close()
    const attempt = (f: () => unknown) => {
      try {
        f()
        return null
      } catch (e) {
        const err = e as TapError
        return { name: err.name, code: err.code, message: err.message, isTapError: err instanceof TapError }
      }
    }
    const mixed = attempt(() => adoptTap(got.fds))
    const stillOpen = got.fds.map(isOpen)
    const bothExist = names.map(exists)
    const queue = adoptTap(disabled.fds)
    const disabledQueue = { ifname: queue.ifname, multiQueue: queue.multiQueue }
    queue.close()
    // Ours to close: the devices go with them.
    for (const fd of got.fds) closeSync(fd)
    return { names, mixed, stillOpen, bothExist, disabledQueue, goneAfter: names.map((n) => !exists(n)) }
  } finally {
    done()
  }
}
