// The QMP helper (./qmp, and node:net behind it) loads on first use, so
// `require('vmtap')` stays cheap. The getters keep QmpClient and QmpError
// visible to ESM `import { QmpClient } from 'vmtap'` (Node's
// cjs-module-lexer reads the re-exports). module.exports, not exports: it is
// the same object under tsc, and the live one when tsx/esbuild runs the source.

import type { Socket } from 'node:net'

import type * as Qmp from './qmp'

let loaded: typeof Qmp | undefined
function qmp(): typeof Qmp {
  return (loaded ??= require('./qmp') as typeof Qmp)
}

/** A connected QMP session: see {@link connectQmp}. */
export type QmpClient = Qmp.QmpClient
/** A QMP command's error reply: `errorClass`, `desc`, `command`; `code` is `ERR_VMTAP_QMP`. */
export type QmpError = Qmp.QmpError
export declare const QmpClient: typeof Qmp.QmpClient
export declare const QmpError: typeof Qmp.QmpError
Object.defineProperty(module.exports, 'QmpClient', { enumerable: true, get: () => qmp().QmpClient })
Object.defineProperty(module.exports, 'QmpError', { enumerable: true, get: () => qmp().QmpError })

/**
 * Connect to QEMU's QMP socket (`-qmp unix:PATH,server=on,wait=off`),
 * negotiate capabilities, and return a client whose commands can carry fds
 * (see {@link hotplugNic}).
 */
export function connectQmp(path: string | Socket, options?: Qmp.QmpConnectOptions): Promise<QmpClient> {
  return qmp().connectQmp(path, options)
}

/**
 * Hot-add a NIC backed by `tap` to a running QEMU: `getfd` for every tap and
 * vhost fd (sent with SCM_RIGHTS), `netdev_add` naming them, then
 * `device_add` (with `mq=on,vectors=2N+2` for N > 1 queues). QEMU keeps its
 * own copies, so the caller may close `tap` afterwards. The device's fds are
 * duplicated once, at the call, and only the duplicates are sent: closing
 * `tap` meanwhile cannot hand QEMU anything else. On failure the commands
 * that succeeded are undone (`netdev_del`, `closefd`).
 */
export function hotplugNic(...args: Parameters<typeof Qmp.hotplugNic>): ReturnType<typeof Qmp.hotplugNic> {
  return qmp().hotplugNic(...args)
}

/**
 * Hot-remove a NIC added by {@link hotplugNic}: `device_del`, wait for the
 * guest to release it (DEVICE_DELETED), `netdev_del`, then `closefd` for any
 * named fd QEMU still holds.
 */
export function unplugNic(...args: Parameters<typeof Qmp.unplugNic>): ReturnType<typeof Qmp.unplugNic> {
  return qmp().unplugNic(...args)
}
