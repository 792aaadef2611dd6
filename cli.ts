#!/usr/bin/env node
// The `vmtap` command's entry point (package.json "bin"); the command itself
// is in cli/.

import { EXIT_SYSTEM } from './cli/errors'
import { run } from './cli/main'

if (require.main === module) {
  // `vmtap probe | head -1`: a reader that goes away is not an error.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') return
    process.stderr.write(`vmtap: cannot write to stdout: ${e.message} (${e.code ?? 'EIO'})\n`)
    process.exitCode = EXIT_SYSTEM
  })
  run(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status
    },
    (e) => {
      process.stderr.write(`vmtap: ${String(e)} (ERR_VMTAP_CLI)\n`)
      process.exitCode = EXIT_SYSTEM
    },
  )
}
