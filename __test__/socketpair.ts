// A connected pair of Unix stream sockets for the fd-passing tests (Node has
// no socketpair(2)): a server on a path in a fresh temporary directory and a
// client connected to it. The server side is paused (Node does not read it),
// so recvFds may.
import { mkdtempSync, rmSync } from 'node:fs'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Pair {
  client: Socket
  server: Socket
  close(): void
}

export async function socketPair(): Promise<Pair> {
  const dir = mkdtempSync(join(tmpdir(), 'vmtap-sock-'))
  const path = join(dir, 's')
  let srv!: Server
  const serverSide = new Promise<Socket>((resolve) => {
    srv = createServer({ pauseOnConnect: true }, resolve)
  })
  await new Promise<void>((r) => srv.listen(path, r))
  // allowHalfOpen: Node must not close the client by itself when the peer goes away (a test sends after that).
  const client = connect({ path, allowHalfOpen: true })
  await new Promise<void>((r) => client.once('connect', () => r()))
  const server = await serverSide
  return {
    client,
    server,
    close() {
      client.destroy()
      server.destroy()
      srv.close()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** Fill the client's side until the kernel takes no more (sendFds with a zero timeout stops there). */
export async function fill(client: Socket, sendFds: (s: Socket, d: Buffer, f: number[], o: object) => Promise<number>) {
  const chunk = Buffer.alloc(1 << 16, 0x2e)
  for (;;) {
    try {
      await sendFds(client, chunk, [], { timeoutMs: 0 })
    } catch (e) {
      if ((e as { code?: string }).code === 'ETIMEDOUT') return
      throw e
    }
  }
}
