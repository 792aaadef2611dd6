#!/usr/bin/env node
// `node scripts/cargo.mjs <cargo args...>`: cargo with the crate source that
// works on this machine (crates.io or Debian's packaged crates; see
// cargo-source.mjs). `fmt` needs no crates and runs as is.
import { spawnSync } from 'node:child_process'
import { cargoSourceArgs, root } from './cargo-source.mjs'

const args = process.argv.slice(2)
const source = args[0] === 'fmt' ? [] : cargoSourceArgs()
// After the subcommand, so that external subcommands (clippy) pass it on.
const r = spawnSync('cargo', [args[0], ...source, ...args.slice(1)], { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
