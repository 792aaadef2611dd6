// The broker's policy: who may ask for what. Parsed and checked once (at
// start and on reload), with user and group names resolved then; a request
// is then decided by authorize() alone, from the kernel's record of the
// client (peerCredentials) and its validated options. README.md, "Policy
// file", documents every field.

import { readFileSync } from 'node:fs'

import { limits } from '../limits'
import { validateIfName } from '../validate'
import { netnsPath, type RemoteTapOptions } from './protocol'

/** An invalid policy: `field` names what is wrong (`allow[0].maxQueues`). */
export class PolicyError extends Error {
  readonly code = 'ERR_VMTAP_POLICY'
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super(`policy: ${field} ${reason}`)
  }
}

/** One rule of the policy file, as written. */
export interface PolicyRuleInput {
  /** A label for logs and refusals. Default `allow[<index>]`. */
  name?: string
  /** Exactly one of uid, user, gid, group: who the rule is for. */
  uid?: number
  user?: string
  gid?: number
  group?: string
  /** The bridges the device may be attached to. */
  bridges: string[]
  /** Whether a device without a bridge may be asked for. Default false. */
  unbridged?: boolean
  /** 1-256. Default 1. */
  maxQueues?: number
  /** Whether the broker opens /dev/vhost-net fds for the client. Default false. */
  vhost?: boolean
  /** Names a client gives must start with it; names the broker picks are `<namePrefix><n>`. Default: clients may not name devices, the broker picks `tap<n>`. */
  namePrefix?: string
  /** The MTUs a client may ask for. Default: none (the kernel's 1500). */
  mtu?: { min: number; max: number }
  /** Whether persistent devices may be asked for. Default false. */
  persist?: boolean
  /** `client` (default): TUNSETOWNER to the client's uid; `none`: no owner (a persistent device is then root's). */
  owner?: 'client' | 'none'
  /** Network namespaces (names or absolute paths) devices may be opened in. Default: none but the broker's own. */
  netns?: string[]
}

/** The policy file, as written. */
export interface PolicyInput {
  /** 1 when given. */
  version?: number
  allow: PolicyRuleInput[]
}

/** A checked rule. */
export interface PolicyRule {
  readonly label: string
  /** Whom it selects, for messages: `uid 65534`, `user qemu (uid 107)`, `group kvm (gid 106)`. */
  readonly who: string
  readonly uid: number | null
  readonly gid: number | null
  readonly bridges: readonly string[]
  readonly unbridged: boolean
  readonly maxQueues: number
  readonly vhost: boolean
  readonly namePrefix: string | null
  readonly mtu: Readonly<{ min: number; max: number }> | null
  readonly persist: boolean
  readonly owner: 'client' | 'none'
  /** As paths (`/run/netns/NAME` for a name). */
  readonly netns: readonly string[]
}

/** A checked policy. */
export interface Policy {
  readonly rules: readonly PolicyRule[]
}

/** Where user and group names are looked up (the local files only: no NSS, no LDAP). */
export interface PolicyLoadOptions {
  /** Default `/etc/passwd`. */
  passwdFile?: string
  /** Default `/etc/group`. */
  groupFile?: string
}

const RULE_KEYS = [
  'name',
  'uid',
  'user',
  'gid',
  'group',
  'bridges',
  'unbridged',
  'maxQueues',
  'vhost',
  'namePrefix',
  'mtu',
  'persist',
  'owner',
  'netns',
]
const TOP_KEYS = ['version', 'allow']
/** The longest namePrefix: room for at least three digits. */
const MAX_PREFIX_BYTES = limits.maxNameBytes - 3
/** A policy file larger than this is refused. */
const MAX_POLICY_BYTES = 1 << 20

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

function knownKeys(v: Record<string, unknown>, known: readonly string[], field: string): void {
  for (const k of Object.keys(v)) {
    if (!known.includes(k))
      throw new PolicyError(`${field}${field ? '.' : ''}${k}`, `is not a known field (known: ${known.join(', ')})`)
  }
}

function boolean(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt
  if (typeof v !== 'boolean') throw new PolicyError(field, `must be true or false, got ${JSON.stringify(v)}`)
  return v
}

function integer(v: unknown, field: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new PolicyError(field, `must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`)
  }
  return v
}

/** `name:...:id:...` lines of /etc/passwd or /etc/group: name → id (field 2). */
function readIds(file: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const f = line.split(':')
    if (f.length < 3 || f[0] === '' || line.startsWith('#') || !/^\d+$/.test(f[2])) continue
    if (!out.has(f[0])) out.set(f[0], Number(f[2]))
  }
  return out
}

/** Name look-ups, each file read once per policy and only when a rule names a user or group. */
class Names {
  #users?: Map<string, number>
  #groups?: Map<string, number>
  constructor(readonly options: PolicyLoadOptions) {}

  #lookup(kind: 'user' | 'group', name: string, field: string): number {
    const file = kind === 'user' ? (this.options.passwdFile ?? '/etc/passwd') : (this.options.groupFile ?? '/etc/group')
    let table: Map<string, number>
    try {
      table = kind === 'user' ? (this.#users ??= readIds(file)) : (this.#groups ??= readIds(file))
    } catch (e) {
      throw new PolicyError(field, `cannot be resolved: ${file}: ${(e as Error).message}`)
    }
    const id = table.get(name)
    if (id === undefined) {
      throw new PolicyError(
        field,
        `names no ${kind} in ${file}: "${name}" (vmtap reads the local file only; give ${kind === 'user' ? 'uid' : 'gid'} instead)`,
      )
    }
    return id
  }

  user(name: string, field: string): number {
    return this.#lookup('user', name, field)
  }

  group(name: string, field: string): number {
    return this.#lookup('group', name, field)
  }
}

function parseRule(r: unknown, i: number, names: Names): PolicyRule {
  const field = `allow[${i}]`
  if (!isObject(r)) throw new PolicyError(field, 'must be an object')
  knownKeys(r, RULE_KEYS, field)
  const at = (k: string) => `${field}.${k}`

  let label = field
  if (r.name !== undefined) {
    if (typeof r.name !== 'string' || !/^[\x21-\x7e][\x20-\x7e]{0,63}$/.test(r.name)) {
      throw new PolicyError(at('name'), 'must be 1-64 printable ASCII characters')
    }
    label = r.name
  }

  const selectors = ['uid', 'user', 'gid', 'group'].filter((k) => r[k] !== undefined)
  if (selectors.length !== 1) {
    throw new PolicyError(
      field,
      selectors.length === 0
        ? 'must select its clients with one of uid, user, gid, group'
        : `must select its clients with only one of uid, user, gid, group (has ${selectors.join(', ')})`,
    )
  }
  let uid: number | null = null
  let gid: number | null = null
  let who: string
  const nameOf = (k: string) => {
    if (typeof r[k] !== 'string' || r[k] === '') throw new PolicyError(at(k), 'must be a name')
    return r[k] as string
  }
  switch (selectors[0]) {
    case 'uid':
      uid = integer(r.uid, at('uid'), 0, limits.maxId)
      who = `uid ${uid}`
      break
    case 'user': {
      const name = nameOf('user')
      uid = names.user(name, at('user'))
      who = `user ${name} (uid ${uid})`
      break
    }
    case 'gid':
      gid = integer(r.gid, at('gid'), 0, limits.maxId)
      who = `gid ${gid}`
      break
    default: {
      const name = nameOf('group')
      gid = names.group(name, at('group'))
      who = `group ${name} (gid ${gid})`
    }
  }

  if (!Array.isArray(r.bridges)) throw new PolicyError(at('bridges'), 'must be a list of bridge names')
  const bridges = r.bridges.map((b, j) => {
    try {
      return validateIfName(b, 'bridge')
    } catch {
      throw new PolicyError(`${at('bridges')}[${j}]`, `is not an interface name: ${JSON.stringify(b)}`)
    }
  })
  const unbridged = boolean(r.unbridged, at('unbridged'), false)
  if (bridges.length === 0 && !unbridged) {
    throw new PolicyError(at('bridges'), 'is empty and unbridged is not true: the rule would allow nothing')
  }

  const maxQueues = r.maxQueues === undefined ? 1 : integer(r.maxQueues, at('maxQueues'), 1, limits.maxQueues)

  let namePrefix: string | null = null
  if (r.namePrefix !== undefined) {
    const p = r.namePrefix
    if (typeof p !== 'string' || !/^[\x21-\x7e]+$/.test(p) || /[/:%]/.test(p) || p.length > MAX_PREFIX_BYTES) {
      throw new PolicyError(
        at('namePrefix'),
        `must be 1-${MAX_PREFIX_BYTES} bytes of printable ASCII without '/', ':', '%' or whitespace`,
      )
    }
    namePrefix = p
  }

  let mtu: PolicyRule['mtu'] = null
  if (r.mtu !== undefined) {
    if (!isObject(r.mtu)) throw new PolicyError(at('mtu'), 'must be an object { "min": N, "max": N }')
    knownKeys(r.mtu, ['min', 'max'], at('mtu'))
    const min = integer(r.mtu.min, `${at('mtu')}.min`, limits.minMtu, limits.tapMaxMtu)
    const max = integer(r.mtu.max, `${at('mtu')}.max`, limits.minMtu, limits.tapMaxMtu)
    if (min > max) throw new PolicyError(at('mtu'), `has min ${min} above max ${max}`)
    mtu = Object.freeze({ min, max })
  }

  let owner: 'client' | 'none' = 'client'
  if (r.owner !== undefined) {
    if (r.owner !== 'client' && r.owner !== 'none') throw new PolicyError(at('owner'), 'must be "client" or "none"')
    owner = r.owner
  }

  let netns: string[] = []
  if (r.netns !== undefined) {
    if (!Array.isArray(r.netns)) throw new PolicyError(at('netns'), 'must be a list of namespace names or paths')
    netns = r.netns.map((n, j) => {
      try {
        return netnsPath(n, 'netns')
      } catch {
        throw new PolicyError(`${at('netns')}[${j}]`, `is not a namespace name or absolute path: ${JSON.stringify(n)}`)
      }
    })
  }

  return Object.freeze({
    label,
    who,
    uid,
    gid,
    bridges: Object.freeze(bridges),
    unbridged,
    maxQueues,
    vhost: boolean(r.vhost, at('vhost'), false),
    namePrefix,
    mtu,
    persist: boolean(r.persist, at('persist'), false),
    owner,
    netns: Object.freeze(netns),
  })
}

/** Check a parsed policy file; user and group names are resolved now. Throws PolicyError naming the field. */
export function parsePolicy(input: unknown, options: PolicyLoadOptions = {}): Policy {
  if (!isObject(input)) throw new PolicyError('(top level)', 'must be a JSON object { "allow": [ ... ] }')
  knownKeys(input, TOP_KEYS, '')
  if (input.version !== undefined && input.version !== 1) {
    throw new PolicyError('version', `must be 1, got ${JSON.stringify(input.version)}`)
  }
  if (!Array.isArray(input.allow)) throw new PolicyError('allow', 'must be a list of rules')
  const names = new Names(options)
  return Object.freeze({ rules: Object.freeze(input.allow.map((r, i) => parseRule(r, i, names))) })
}

/** Read and check a policy file (JSON). Throws PolicyError. */
export function loadPolicy(file: string, options: PolicyLoadOptions = {}): Policy {
  let text: string
  try {
    const buf = readFileSync(file)
    if (buf.length > MAX_POLICY_BYTES) throw new Error(`larger than ${MAX_POLICY_BYTES} bytes`)
    text = buf.toString('utf8')
  } catch (e) {
    throw new PolicyError(file, `cannot be read: ${(e as Error).message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    throw new PolicyError(file, `is not JSON: ${(e as Error).message}`)
  }
  return parsePolicy(json, options)
}

/** Who asks, as the kernel recorded it (see peerCredentials). */
export interface Requester {
  uid: number
  gid: number
  groups: readonly number[] | null
}

/** authorize()'s answer. */
type Decision =
  | {
      granted: true
      rule: PolicyRule
      /** The request as granted: `vhost: 'auto'` becomes false under a rule without vhost. */
      options: RemoteTapOptions
    }
  | { granted: false; rule: PolicyRule | null; message: string }

function selects(rule: PolicyRule, who: Requester): boolean {
  if (rule.uid !== null) return who.uid === rule.uid
  return who.gid === rule.gid || (who.groups?.includes(rule.gid as number) ?? false)
}

const list = (xs: readonly string[]) => (xs.length ? xs.join(', ') : 'none')

/** Why `rule` refuses `req` (whose namespace is at `netns`), or null when it allows it. */
function refusal(rule: PolicyRule, req: RemoteTapOptions, netns: string | undefined): string | null {
  if (netns !== undefined && !rule.netns.includes(netns)) {
    return `netns ${req.netns} is not in its netns (${list(rule.netns)})`
  }
  if (req.bridge === undefined) {
    if (!rule.unbridged) return `a device without a bridge needs unbridged: true (its bridges: ${list(rule.bridges)})`
  } else if (!rule.bridges.includes(req.bridge)) {
    return `bridge ${req.bridge} is not in its bridges (${list(rule.bridges)})`
  }
  const queues = req.queues ?? 1
  if (queues > rule.maxQueues) return `${queues} queues exceed its maxQueues ${rule.maxQueues}`
  if (req.vhost === true && !rule.vhost) return 'vhost is not allowed (vhost: false)'
  if (req.name !== undefined) {
    if (rule.namePrefix === null) return `clients may not name devices (no namePrefix); asked for ${req.name}`
    if (!req.name.startsWith(rule.namePrefix))
      return `name ${req.name} does not start with its namePrefix ${rule.namePrefix}`
  }
  if (req.mtu !== undefined) {
    if (rule.mtu === null) return `mtu ${req.mtu} is not allowed (no mtu range)`
    if (req.mtu < rule.mtu.min || req.mtu > rule.mtu.max) {
      return `mtu ${req.mtu} is outside its mtu range ${rule.mtu.min}-${rule.mtu.max}`
    }
  }
  if (req.persist === true && !rule.persist) return 'persistent devices are not allowed (persist: false)'
  return null
}

/**
 * Decide a request: the first rule that selects the requester and allows
 * the request grants it. A refusal names every rule that selected the
 * requester and why each refused, or says that none selected it.
 */
export function authorize(policy: Policy, who: Requester, req: RemoteTapOptions): Decision {
  const reasons: string[] = []
  let first: PolicyRule | null = null
  let netns: string | undefined
  for (const rule of policy.rules) {
    if (!selects(rule, who)) continue
    // The namespace as a path, the same for every rule: worked out at the first that selects the requester.
    if (req.netns !== undefined) netns ??= netnsPath(req.netns, 'netns')
    const why = refusal(rule, req, netns)
    if (why === null) {
      const options = { ...req }
      if (options.vhost === 'auto' && !rule.vhost) options.vhost = false
      return { granted: true, rule, options }
    }
    first ??= rule
    reasons.push(`rule ${JSON.stringify(rule.label)} (${rule.who}): ${why}`)
  }
  if (first === null) {
    const groups = who.groups === null ? 'unknown' : who.groups.join(',') || 'none'
    return {
      granted: false,
      rule: null,
      message: `no rule of the policy selects uid ${who.uid} (gid ${who.gid}, groups ${groups})`,
    }
  }
  return { granted: false, rule: first, message: `refused by ${reasons.join('; ')}` }
}
