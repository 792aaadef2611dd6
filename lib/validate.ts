// Argument validation, done before any syscall (no native code here). The
// numbers come from ./limits.

import { invalidType, invalidValue, outOfRange } from './errors'
import { limits } from './limits'

/**
 * Read an options object exactly once: own string keys only (inherited and
 * prototype-polluted properties are ignored), unknown keys refused, getters
 * called once (a throwing getter becomes ERR_INVALID_ARG_VALUE).
 * @internal
 */
export function snapshotOptions(
  value: unknown,
  argName: string,
  known: readonly string[] | null,
): Record<string, unknown> {
  // No prototype: a polluted Object.prototype must not supply options.
  if (value === undefined) return Object.create(null)
  if (value === null || typeof value !== 'object' || isArray(value, argName)) {
    throw invalidType(argName, 'of type object', value)
  }
  let keys: (string | symbol)[]
  try {
    keys = Reflect.ownKeys(value)
  } catch (e) {
    throw Object.assign(invalidValue(argName, 'could not be read', value), { cause: e })
  }
  const out: Record<string, unknown> = Object.create(null)
  for (const key of keys) {
    if (typeof key !== 'string') continue
    let desc: PropertyDescriptor | undefined
    try {
      desc = Reflect.getOwnPropertyDescriptor(value, key)
    } catch (e) {
      throw Object.assign(invalidValue(`${argName}.${key}`, 'could not be read', value), { cause: e })
    }
    if (!desc?.enumerable) continue
    if (known !== null && !known.includes(key)) {
      throw invalidValue(
        `${argName}.${key}`,
        `is not a known option (known: ${known.join(', ')})`,
        safeGet(desc, value),
      )
    }
    out[key] = readDescriptor(desc, value, `${argName}.${key}`)
  }
  return out
}

/**
 * `Array.isArray`, which throws for a revoked Proxy: that becomes
 * ERR_INVALID_ARG_VALUE like any argument that cannot be read.
 * @internal
 */
export function isArray(value: unknown, argName: string): boolean {
  try {
    return Array.isArray(value)
  } catch (e) {
    throw Object.assign(invalidValue(argName, 'could not be read', value), { cause: e })
  }
}

/**
 * `object[key]` once; a throwing getter or Proxy trap becomes
 * ERR_INVALID_ARG_VALUE (as in snapshotOptions).
 * @internal
 */
export function readProperty(object: object, key: PropertyKey, name: string): unknown {
  try {
    return (object as Record<PropertyKey, unknown>)[key]
  } catch (e) {
    throw Object.assign(invalidValue(name, 'could not be read', '[getter]'), { cause: e })
  }
}

/**
 * A copy of an array's elements, each read once (holes become undefined),
 * so what was validated is what is used.
 * @internal
 */
export function copyArray(array: readonly unknown[], name: string): unknown[] {
  const length = readProperty(array, 'length', `${name}.length`)
  // A Proxy over an array may claim any length.
  if (typeof length !== 'number' || !(length >= 0 && length <= 65536))
    throw outOfRange(`${name}.length`, '<= 65536', length)
  const out: unknown[] = []
  for (let i = 0; i < length; i++) out.push(readProperty(array, i, `${name}[${i}]`))
  return out
}

function safeGet(desc: PropertyDescriptor, _target: object): unknown {
  if ('value' in desc) return desc.value
  return '[getter]'
}

function readDescriptor(desc: PropertyDescriptor, target: object, name: string): unknown {
  if ('value' in desc) return desc.value
  if (!desc.get) return undefined
  try {
    return desc.get.call(target)
  } catch (e) {
    throw Object.assign(invalidValue(name, 'could not be read (its getter threw)', '[getter]'), { cause: e })
  }
}

/** @internal */
export function validateInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value)
  if (!Number.isInteger(value)) throw outOfRange(name, 'an integer', value)
  if (value < min || value > max || Object.is(value, -0)) throw outOfRange(name, `>= ${min} && <= ${max}`, value)
  return value
}

/** @internal */
export function validateBoolean(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalidType(name, 'of type boolean', value)
  return value
}

/** A three-way choice: `true` (required), `false` (never) or `'auto'` (when the host supports it). */
export type Tristate = boolean | 'auto'

/** @internal */
export function validateTristate(value: unknown, name: string, dflt: Tristate): Tristate {
  if (value === undefined) return dflt
  if (value === true || value === false || value === 'auto') return value
  if (typeof value === 'string') throw invalidValue(name, "must be true, false or 'auto'", value)
  throw invalidType(name, "of type boolean or the string 'auto'", value)
}

const NAME_RULE =
  "must be '' (the kernel picks {dflt}), a template with one %d, or 1 to 15 bytes of printable ASCII without '/', ':', whitespace or '%'"

/**
 * @internal The interface-name rules of the core (crates/tap/src/rules.rs), checked before any syscall.
 * `dflt` is the kernel's name for `''` (tap%d; macvtap%d for a macvtap), for the message.
 */
export function validateName(value: unknown, name: string, dflt = 'tap%d'): string {
  if (value === undefined) return ''
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (value === '') return ''
  const rule = NAME_RULE.replace('{dflt}', dflt)
  if (Buffer.byteLength(value) > limits.maxNameBytes) {
    throw invalidValue(name, `is longer than ${limits.maxNameBytes} bytes; it ${rule}`, value)
  }
  if (value === '.' || value === '..') throw invalidValue(name, 'is reserved', value)
  // Printable ASCII, no whitespace, '/', ':'; '%' only in one '%d'.
  if (!/^[\x21-\x7e]+$/.test(value) || /[/:]/.test(value)) throw invalidValue(name, rule, value)
  const templates = value.split('%d').length - 1
  if (value.replace(/%d/g, '').includes('%') || templates > 1) throw invalidValue(name, rule, value)
  return value
}

/** @internal */
export function validatePath(value: unknown, name: string, dflt: string): string {
  if (value === undefined) return dflt
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (!value.startsWith('/') || value.includes('\0'))
    throw invalidValue(name, 'must be an absolute path without NUL bytes', value)
  return value
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i

/** @internal A unicast MAC in `aa:bb:cc:dd:ee:ff` form, lower-cased. */
export function validateMac(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (!MAC_RE.test(value)) throw invalidValue(name, "must be a MAC address like '52:54:00:12:34:56'", value)
  const first = parseInt(value.slice(0, 2), 16)
  if (first & 1) throw invalidValue(name, 'must be a unicast MAC address (the first octet must be even)', value)
  if (/^(00:){5}00$/.test(value)) throw invalidValue(name, 'must not be all zeros', value)
  return value.toLowerCase()
}

/** @internal An interface name (not a template): a bridge, a device to delete. */
export function validateIfName(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  const b = validateName(value, name)
  if (b === '' || b.includes('%d')) throw invalidValue(name, 'must be an interface name', value)
  return b
}

/** @internal An MTU: what SIOCSIFMTU carries (a TAP device takes at most limits.tapMaxMtu). */
export function validateMtu(value: unknown, name: string): number {
  return validateInteger(value, name, limits.minMtu, limits.maxMtu)
}

/** @internal A virtio-net header size. */
export function validateVnetHdrSize(value: unknown, name: string): number {
  if (typeof value !== 'number') throw invalidType(name, 'of type number', value)
  if (!limits.vnetHdrSizes.includes(value))
    throw outOfRange(name, limits.vnetHdrSizes.join(', ').replace(/, (\d+)$/, ' or $1'), value)
  return value
}

/** @internal A uid or gid. */
export function validateId(value: unknown, name: string): number {
  return validateInteger(value, name, 0, limits.maxId)
}

/** @internal An fd number. */
export function validateFd(value: unknown, name: string): number {
  return validateInteger(value, name, 0, 2 ** 31 - 1)
}

/** A network namespace: a bare name (`blue`: /run/netns/blue), an absolute path, or an fd. */
export type NetnsSpec = string | number

/**
 * @internal A network namespace as `ip netns` names it (1-255 bytes, no
 * '/', not '.' or '..'), an absolute path to a namespace file, or an open fd
 * of one. Returns it normalized: a name becomes its /run/netns path.
 */
export function validateNetns(value: unknown, name: string): NetnsSpec {
  if (typeof value === 'number') return validateFd(value, name)
  if (typeof value !== 'string') throw invalidType(name, 'a namespace name, path or fd number', value)
  if (value.includes('\0')) throw invalidValue(name, 'must not contain NUL bytes', value)
  if (value.startsWith('/')) return value
  if (value === '' || Buffer.byteLength(value) > limits.maxNetnsNameBytes) {
    throw invalidValue(name, `must be a name of 1 to ${limits.maxNetnsNameBytes} bytes or an absolute path`, value)
  }
  if (value.includes('/') || value === '.' || value === '..') {
    throw invalidValue(name, "must be a namespace name (no '/', not '.' or '..') or an absolute path", value)
  }
  return `/run/netns/${value}`
}

/** @internal `options.netns` of the calls that take one: null when absent. */
export function netnsOf(value: unknown): NetnsSpec | null {
  return value === undefined ? null : validateNetns(value, 'options.netns')
}

/** @internal The TUN/TAP clone device where no `tunPath` says otherwise. */
export const TUN_PATH = '/dev/net/tun'
/** @internal The vhost-net device where no `vhostPath` says otherwise. */
export const VHOST_PATH = '/dev/vhost-net'

/**
 * @internal The exact name of an existing device (to delete, to look up): no
 * template. It accepts what validateIfName accepts (that rule, in one place),
 * with its own messages: one for '' and a template, one for the rest.
 */
export function validateDeviceName(value: unknown, name: string, what = 'the device to delete'): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  const rule = `must name ${what} exactly: 1 to ${limits.maxNameBytes} bytes of printable ASCII without '/', ':', whitespace or '%'`
  if (value === '' || value.includes('%d')) throw invalidValue(name, `${rule} (not empty, not a template)`, value)
  try {
    return validateIfName(value, name)
  } catch {
    throw invalidValue(name, rule, value)
  }
}

const TAG_RULE = "must be 1 to {max} bytes of ASCII letters, digits and '.', '_', '-', ':', '@', '/'"

/** @internal A tag (stored in the interface alias as `vmtap:tag=<tag>`): the core's rules.rs check_tag. */
export function validateTag(value: unknown, name: string): string {
  if (typeof value !== 'string') throw invalidType(name, 'of type string', value)
  if (value.length === 0 || value.length > limits.maxTagBytes || !/^[A-Za-z0-9._:@/-]+$/.test(value)) {
    throw invalidValue(name, TAG_RULE.replace('{max}', String(limits.maxTagBytes)), value)
  }
  return value
}

/**
 * An AbortSignal option, as Node checks one (an object with `aborted`);
 * undefined when absent.
 * @internal
 */
export function validateAbortSignal(value: unknown, name: string): AbortSignal | undefined {
  if (value === undefined) return undefined
  if (value === null || typeof value !== 'object' || !('aborted' in value)) {
    throw invalidType(name, 'an instance of AbortSignal', value)
  }
  return value as AbortSignal
}
