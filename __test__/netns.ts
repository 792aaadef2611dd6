// Run test scenarios inside network namespaces the test creates and deletes,
// so nothing a test does (devices, bridges, traffic) touches the host's.
import { execFileSync, spawn } from 'node:child_process'
import { join } from 'node:path'

let counter = 0

/** Create a fresh namespace (loopback up), run `fn`, delete it. */
export async function withNetns<T>(fn: (ns: string) => Promise<T>): Promise<T> {
  const ns = `vmtap-${process.pid}-${counter++}`
  execFileSync('ip', ['netns', 'add', ns])
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    return await fn(ns)
  } finally {
    execFileSync('ip', ['netns', 'del', ns])
  }
}

export interface RunOptions {
  /** Extra command prefix run inside the namespace, e.g. setpriv. */
  wrap?: string[]
  env?: NodeJS.ProcessEnv
}

/**
 * Call `exportName` of the scenario module `module` (a path relative to
 * __test__/) with `args`, in a child process inside `ns`; resolve with what
 * it returned (JSON). A thrown error rejects with its message, code and
 * the child's stderr.
 */
export function runIn<T = unknown>(
  ns: string,
  module: string,
  exportName: string,
  args: unknown[] = [],
  options: RunOptions = {},
): Promise<T> {
  const runner = join(__dirname, 'netns-runner.ts')
  const cmd = [
    'netns',
    'exec',
    ns,
    ...(options.wrap ?? []),
    process.execPath,
    '--import=tsx',
    runner,
    join(__dirname, module),
    exportName,
    JSON.stringify(args),
  ]
  return new Promise((resolve, reject) => {
    const child = spawn('ip', cmd, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (err += d))
    child.on('error', reject)
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? ''
      let msg: { ok: boolean; value?: T; error?: { message: string; code?: string } }
      try {
        msg = JSON.parse(line)
      } catch {
        return reject(new Error(`scenario ${exportName} exited ${code} without a result:\n${out}\n${err}`))
      }
      if (msg.ok) resolve(msg.value as T)
      else
        reject(Object.assign(new Error(`${msg.error?.message}\n--- child stderr:\n${err}`), { code: msg.error?.code }))
    })
  })
}
