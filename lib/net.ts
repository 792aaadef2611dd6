// IP addresses in CIDR form: the rules of the core's rules.rs (parse_cidr,
// check_address, check_route, check_addresses, check_routes), checked here
// before any syscall with Node-style errors. No node:net: its isIP accepts
// zone ids and is not the core's grammar.

import { invalidType, invalidValue, outOfRange } from './errors'
import { limits } from './limits'
import { copyArray, isArray } from './validate'

/** A parsed address: its bytes (4 or 16) and prefix length. */
interface Cidr {
  bytes: number[]
  prefixLen: number
}

const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])'
const IPV4_RE = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`)
const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/

function parseIpv4(s: string): number[] | null {
  const m = IPV4_RE.exec(s)
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])] : null
}

/** Groups of one side of `::` (or of the whole address), an IPv4 tail counting as two. */
function groups(s: string, last: boolean): number[] | null {
  if (s === '') return []
  const parts = s.split(':')
  const out: number[] = []
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]
    if (last && i === parts.length - 1 && p.includes('.')) {
      const v4 = parseIpv4(p)
      if (!v4) return null
      out.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3])
    } else if (HEX_GROUP_RE.test(p)) {
      out.push(parseInt(p, 16))
    } else {
      return null
    }
  }
  return out
}

function parseIpv6(s: string): number[] | null {
  const halves = s.split('::')
  let g: number[]
  if (halves.length === 1) {
    const all = groups(s, true)
    if (all?.length !== 8) return null
    g = all
  } else if (halves.length === 2) {
    const head = groups(halves[0], false)
    const tail = groups(halves[1], true)
    if (!head || !tail || head.length + tail.length > 7) return null
    g = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail]
  } else {
    return null
  }
  return g.flatMap((x) => [x >> 8, x & 0xff])
}

/** An address as the core shows it in messages (IPv6 with its longest zero run as `::`). */
function formatIp(bytes: readonly number[]): string {
  if (bytes.length === 4) return bytes.join('.')
  const g: number[] = []
  for (let i = 0; i < 16; i += 2) g.push((bytes[i] << 8) | bytes[i + 1])
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++
      continue
    }
    let j = i
    while (j < 8 && g[j] === 0) j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(':')
  if (best < 0) return hex(g)
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`
}

const CIDR_RULE = 'must be an IPv4 or IPv6 address in CIDR form (like 192.0.2.1/32 or 2001:db8::1/64)'

/**
 * `ADDR[/LEN]` (the core's parse_cidr): a dotted quad without leading zeros
 * or an RFC 4291 IPv6 address (no zone, no brackets), and a decimal prefix
 * length without leading zeros; a bare address is /32 or /128.
 */
function parseCidr(value: unknown, name: string): Cidr {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  const slash = value.indexOf('/')
  const addr = slash < 0 ? value : value.slice(0, slash)
  const len = slash < 0 ? null : value.slice(slash + 1)
  const bytes = addr.includes(':') ? parseIpv6(addr) : parseIpv4(addr)
  if (!bytes) throw invalidValue(name, CIDR_RULE, value)
  const max = bytes.length * 8
  if (len === null) return { bytes, prefixLen: max }
  if (!/^[0-9]{1,3}$/.test(len) || (len.length > 1 && len.startsWith('0'))) throw invalidValue(name, CIDR_RULE, value)
  const n = Number(len)
  if (n > max) throw outOfRange(name, `a prefix length of 0 to ${max} for ${formatIp(bytes)}`, value)
  return { bytes, prefixLen: n }
}

function isZero(b: readonly number[]): boolean {
  return b.every((x) => x === 0)
}

/** The core's check_address: not unspecified, multicast, 255.255.255.255 or ::1. */
function checkAddress(c: Cidr, name: string, value: unknown): void {
  const b = c.bytes
  let why: string | null = null
  if (isZero(b)) why = 'the unspecified address'
  else if (b.length === 4 && b[0] >= 224 && b[0] <= 239) why = 'a multicast address'
  else if (b.length === 4 && b.every((x) => x === 255)) why = 'the broadcast address'
  else if (b.length === 16 && b[0] === 0xff) why = 'a multicast address'
  else if (b.length === 16 && isZero(b.slice(0, 15)) && b[15] === 1) why = 'the loopback address'
  if (why) throw invalidValue(name, `must be an address for an interface, not ${why}`, value)
}

/** The network of `c`: its host bits cleared. */
function networkOf(c: Cidr): number[] {
  return c.bytes.map((x, i) => {
    const bits = Math.min(8, Math.max(0, c.prefixLen - i * 8))
    return x & ((0xff << (8 - bits)) & 0xff)
  })
}

/** An interface address, parsed and checked. */
function addressCidr(value: unknown, name: string): Cidr {
  const c = parseCidr(value, name)
  checkAddress(c, name, value)
  return c
}

/** A route destination, parsed and checked. */
function routeCidr(value: unknown, name: string): Cidr {
  const c = parseCidr(value, name)
  const net = networkOf(c)
  if (net.some((x, i) => x !== c.bytes[i])) {
    throw invalidValue(name, `must have no host bits set; the network is ${formatIp(net)}/${c.prefixLen}`, value)
  }
  return c
}

/** An interface address in CIDR form (host bits kept); a bare one is /32 or /128. @internal */
export function validateAddress(value: unknown, name: string): string {
  addressCidr(value, name)
  return value as string
}

/** A route destination in CIDR form, host bits zero (`/0` is the default route). @internal */
export function validateRoute(value: unknown, name: string): string {
  routeCidr(value, name)
  return value as string
}

function list(
  value: unknown,
  name: string,
  max: number,
  one: (v: unknown, n: string) => Cidr,
  key: (c: Cidr) => string,
): string[] {
  if (!isArray(value, name)) throw invalidType(name, 'an array of strings', value)
  const items = copyArray(value as unknown[], name)
  if (items.length > max) throw outOfRange(`${name}.length`, `<= ${max}`, items.length)
  const seen = new Map<string, number>()
  return items.map((v, i) => {
    const k = key(one(v, `${name}[${i}]`))
    const j = seen.get(k)
    if (j !== undefined) throw invalidValue(`${name}[${i}]`, `repeats ${name}[${j}]`, v)
    seen.set(k, i)
    return v as string
  })
}

/** openTap's `addresses`: at most limits.maxAddresses, none twice (whatever the prefix length). @internal */
export function validateAddresses(value: unknown, name: string): string[] {
  return list(value, name, limits.maxAddresses, addressCidr, (c) => c.bytes.join('.'))
}

/** openTap's `routes`: at most limits.maxRoutes, none twice. @internal */
export function validateRoutes(value: unknown, name: string): string[] {
  return list(value, name, limits.maxRoutes, routeCidr, (c) => `${c.bytes.join('.')}/${c.prefixLen}`)
}
