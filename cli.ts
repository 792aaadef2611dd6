#!/usr/bin/env node
// The `vmtap` command's entry point (package.json "bin"); the command itself
// is in cli/.

const EXIT_SYSTEM = 1

/** Print `e` as vmtap's one line (when even the command could not be loaded, e.g. no native binary). */
function fatal(e: unknown): void {
  const err = e as { message?: unknown; code?: unknown }
  const message = typeof err?.message === 'string' ? err.message : String(e)
  const code = typeof err?.code === 'string' ? err.code : 'ERR_VMTAP_CLI'
  process.stderr.write(`vmtap: ${message.trim().replace(/\s*\n\s*/g, '; ')} (${code})\n`)
  process.exitCode = EXIT_SYSTEM
}

if (require.main === module) {
  // `vmtap probe | head -1`: a reader that goes away is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') return
    process.stderr.write(`vmtap: cannot write to stdout: ${e.message} (${e.code ?? 'EIO'})\n`)
    process.exitCode = EXIT_SYSTEM
  })
  let run: typeof import('./cli/main').run | undefined
  try {
    run = (require('./cli/main') as typeof import('./cli/main')).run
  } catch (e) {
    fatal(e)
  }
  run?.(process.argv.slice(2)).then((status) => {
    process.exitCode = status
  }, fatal)
}
