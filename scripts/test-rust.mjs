#!/usr/bin/env node
// `cargo test` of the workspace. Tests that need root are #[ignore]d with the
// reason; as root they are included, so CI (root) runs them for real.
import { spawnSync } from 'node:child_process'
import { cargoSourceArgs, root } from './cargo-source.mjs'

const isRoot = process.getuid?.() === 0
const args = ['test', ...cargoSourceArgs(), '--workspace', '--locked', '--', ...(isRoot ? ['--include-ignored'] : [])]
if (!isRoot && process.env.VMTAP_REQUIRE_ROOT === '1') {
  console.error('vmtap: VMTAP_REQUIRE_ROOT=1 but not root: the root-only Rust tests must run here')
  process.exit(1)
}
if (!isRoot) console.error('vmtap: not root: Rust tests that need CAP_NET_ADMIN are skipped (ignored)')
const r = spawnSync('cargo', args, { cwd: root, stdio: 'inherit' })
process.exit(r.status ?? 1)
