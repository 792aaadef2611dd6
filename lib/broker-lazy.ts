// The broker (./broker/: policy, protocol, server, client) loads on first
// use, so `require('vmtap')` stays cheap. As in ./qmp-lazy, the getters keep
// the classes visible to ESM named imports.

import type * as Client from './broker/client'
import type * as PolicyModule from './broker/policy'
import type * as Server from './broker/server'

let client: typeof Client | undefined
let policy: typeof PolicyModule | undefined
let server: typeof Server | undefined
const clientModule = () => (client ??= require('./broker/client') as typeof Client)
const policyModule = () => (policy ??= require('./broker/policy') as typeof PolicyModule)
const serverModule = () => (server ??= require('./broker/server') as typeof Server)

/** A running broker: see {@link createBroker}. */
export type Broker = Server.Broker
/** An invalid policy: `field` names what is wrong, `code` is `ERR_VMTAP_POLICY`. */
export type PolicyError = PolicyModule.PolicyError
export declare const Broker: typeof Server.Broker
export declare const PolicyError: typeof PolicyModule.PolicyError
Object.defineProperty(module.exports, 'Broker', { enumerable: true, get: () => serverModule().Broker })
Object.defineProperty(module.exports, 'PolicyError', { enumerable: true, get: () => policyModule().PolicyError })

/**
 * Ask the broker listening on `socketPath` for a TAP device; resolves with a
 * TapDevice owning the fds it sent. A refusal is a TapError with code
 * `EACCES` whose message names the rule; no broker there is the socket's
 * error (ENOENT, ECONNREFUSED). See README.md, "The broker".
 */
export function requestTap(...args: Parameters<typeof Client.requestTap>): ReturnType<typeof Client.requestTap> {
  return clientModule().requestTap(...args)
}

/**
 * A broker that opens TAP devices for unprivileged clients by policy
 * (run it with CAP_NET_ADMIN): `await broker.listen()`, later `close()`.
 */
export function createBroker(...args: Parameters<typeof Server.createBroker>): ReturnType<typeof Server.createBroker> {
  return serverModule().createBroker(...args)
}

/** Read and check a policy file (JSON); throws PolicyError naming the field. */
export function loadPolicy(
  ...args: Parameters<typeof PolicyModule.loadPolicy>
): ReturnType<typeof PolicyModule.loadPolicy> {
  return policyModule().loadPolicy(...args)
}

/** Check a policy given as a value (the parsed JSON); throws PolicyError naming the field. */
export function parsePolicy(
  ...args: Parameters<typeof PolicyModule.parsePolicy>
): ReturnType<typeof PolicyModule.parsePolicy> {
  return policyModule().parsePolicy(...args)
}
