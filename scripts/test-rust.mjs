#!/usr/bin/env node
// `cargo test` of the workspace. Tests that need root are #[ignore]d with the
// reason; as root they are included, so CI (root) runs them for real.
import { spawnSync } from 'node:child_process'
import { cargoSourceArgs, root } from './cargo-source.mjs'

const isRoot = process.getuid?.() === 0
// As root, one test at a time: the root tests spawn `ip`, and a child forked
// by one test holds every fd of the process until its exec, so a device
// another test closes can outlive its close() and make that test's reopen of
// the same name fail with EBUSY (the README's "Device or resource busy").
const rootArgs = ['--include-ignored', '--test-threads=1']
const args = ['test', ...cargoSourceArgs(), '--workspace', '--locked', '--', ...(isRoot ? rootArgs : [])]
if (!isRoot && process.env.VMTAP_REQUIRE_ROOT === '1') {
  console.error('vmtap: VMTAP_REQUIRE_ROOT=1 but not root: the root-only Rust tests must run here')
  process.exit(1)
}
if (!isRoot) console.error('vmtap: not root: Rust tests that need CAP_NET_ADMIN are skipped (ignored)')
const r = spawnSync('cargo', args, { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
