// Who is at the other end of a connected Unix socket, as the kernel recorded
// it when the peer connected (SO_PEERCRED, SO_PEERGROUPS).

import type { Socket } from 'node:net'

import { invalidType, invalidValue } from './errors'
import { native } from './native'
import { validateFd } from './validate'

/** The kernel's record of a Unix socket's peer. */
export interface PeerCredentials {
  /** The peer's pid when it connected (0 when this process's pid namespace cannot see it). Informative only: pids are reused. */
  pid: number
  /** Its effective uid when it connected (the overflow uid 65534 when it has no mapping in this user namespace). */
  uid: number
  /** Its effective gid when it connected. */
  gid: number
  /** Its supplementary groups when it connected; `null` on kernels before 4.13 (no SO_PEERGROUPS). */
  groups: number[] | null
}

/**
 * The peer of a connected Unix socket (a `net.Socket` or an fd number), as
 * the kernel recorded it at `connect(2)`: nothing the peer says, and not
 * changed by anything it does afterwards (setuid, exec, passing the socket
 * on). A socket of another family, or one without a peer, is a TapError
 * (`EAFNOSUPPORT`, `ENOTCONN`).
 */
export function peerCredentials(socket: Socket | number): PeerCredentials {
  let fd: number
  if (typeof socket === 'number') fd = validateFd(socket, 'socket')
  else if (socket !== null && typeof socket === 'object' && typeof (socket as Socket).write === 'function') {
    const raw = (socket as { _handle?: { fd?: unknown } | null })._handle?.fd
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0) {
      throw invalidValue('socket', 'is not a connected socket (it has no fd)', '[net.Socket]')
    }
    fd = raw
  } else throw invalidType('socket', 'a connected net.Socket or an fd number', socket)
  return native().peerCredentials(fd)
}
