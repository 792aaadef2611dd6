// `vmtap gc`: remove the persistent devices carrying a vmtap tag that no
// process holds.

import type { Command } from 'commander'

import { type GcEntry, type GcResult, gcTaps, type TapHolder } from '../index'
import { addNetnsFlag } from './flags'
import { describeError, EXIT_SYSTEM, renameOptions } from './errors'

/** `vmtap gc --json`, schema 1. */
export interface GcReport {
  schema: 1
  dryRun: boolean
  removed: GcEntry[]
  kept: (GcEntry & { holders: TapHolder[] })[]
  failed: (GcEntry & { error: { code: string; message: string } })[]
}

export async function runGc(o: { tag?: string; dryRun?: boolean; netns?: string }): Promise<GcResult> {
  try {
    return await gcTaps({
      ...(o.tag !== undefined ? { tag: o.tag } : {}),
      ...(o.netns !== undefined ? { netns: o.netns } : {}),
      dryRun: o.dryRun === true,
    })
  } catch (e) {
    throw renameOptions(e, null)
  }
}

export function gcReport(r: GcResult): GcReport {
  return {
    schema: 1,
    dryRun: r.dryRun,
    removed: r.removed,
    kept: r.kept,
    failed: r.failed.map(({ error, ...e }) => ({ ...e, error: { code: error.code, message: error.message } })),
  }
}

/** The human form: what was removed (or would be) and what was kept, one line each. */
export function gcText(r: GcResult): string {
  const lines: string[] = []
  const who = (h: TapHolder[]) =>
    h.length ? `held by ${h.map((p) => `pid ${p.pid}${p.command ? ` (${p.command})` : ''}`).join(', ')}` : 'held'
  for (const e of r.removed) lines.push(`${r.dryRun ? 'would remove' : 'removed'} ${e.ifname} (tag ${e.tag})`)
  for (const e of r.kept) lines.push(`kept ${e.ifname} (tag ${e.tag}): ${who(e.holders)}`)
  if (lines.length === 0 && r.failed.length === 0) lines.push('nothing to collect')
  return lines.length ? `${lines.join('\n')}\n` : ''
}

const GC_HELP = `
Removes the persistent TUN/TAP devices of this network namespace that carry a vmtap
tag (openTap's tag, vmtap create/exec --tag; with --tag, that one) and that no process
holds: what a crashed VM manager leaves behind. Untagged devices are never touched,
nor are held ones (they are listed as kept, with their holders). A device a process
acquires while gc works on it is kept too: the kernel is asked, not /proc. Prints one
line per device; a device that could not be removed is reported on stderr and the exit
status is 1.

--dry-run lists what would be removed (from one netlink dump; nothing is attached).
--json prints { schema: 1, dryRun: bool,
  removed: [{ ifname, ifindex, tag }], kept: [{ ifname, ifindex, tag, holders: [{ pid,
  command, fds }] }], failed: [{ ifname, ifindex, tag, error: { code, message } }] }.

Examples:
  vmtap gc --tag ci --dry-run
  vmtap gc --json | jq -r '.removed[].ifname'
`

/** Add `gc` to the program. */
export function addGcCommand(program: Command, onStatus: (status: number) => void): void {
  const cmd = program
    .command('gc')
    .description('remove unheld persistent devices that carry a vmtap tag')
    .option('--tag <tag>', 'only devices with this tag (default: any vmtap tag)')
    .option('--dry-run', 'print what would be removed; remove nothing')
    .option('--json', 'print JSON (schema 1)')
  addNetnsFlag(cmd)
    .addHelpText('after', GC_HELP)
    .action(async (opts: { tag?: string; dryRun?: boolean; json?: boolean; netns?: string }) => {
      const r = await runGc(opts)
      process.stdout.write(opts.json ? `${JSON.stringify(gcReport(r), null, 2)}\n` : gcText(r))
      if (!opts.json) {
        for (const f of r.failed) {
          const { line } = describeError(f.error)
          process.stderr.write(`${line.replace(/^vmtap: /, `vmtap: could not remove ${f.ifname}: `)}\n`)
        }
      }
      onStatus(r.failed.length ? EXIT_SYSTEM : 0)
    })
}
