// Child side of netns.ts: import a scenario module, call one export with
// JSON arguments, print {ok, value} or {ok: false, error} as the last line.
async function main() {
  const [modulePath, exportName, argsJson] = process.argv.slice(2)
  const mod = (await import(modulePath)) as Record<string, (...a: unknown[]) => unknown>
  const fn = mod[exportName] ?? (mod.default as unknown as Record<string, (...a: unknown[]) => unknown>)?.[exportName]
  if (typeof fn !== 'function') throw new Error(`${modulePath} has no export ${exportName}`)
  return fn(...(JSON.parse(argsJson) as unknown[]))
}

main().then(
  (value) => {
    process.stdout.write(`\n${JSON.stringify({ ok: true, value: value ?? null })}\n`)
    process.exit(0)
  },
  (e: NodeJS.ErrnoException) => {
    process.stdout.write(
      `\n${JSON.stringify({ ok: false, error: { message: e?.stack ?? String(e), code: e?.code } })}\n`,
    )
    process.exit(1)
  },
)
