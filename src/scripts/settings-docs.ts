// `npm run settings:docs`: rewrites README's settings table and .env.example from src/settings.ts.
// `--check` writes nothing and exits 1 when either file is out of date.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { renderEnvExample, withReadmeTable } from '../settings-docs.js'

// dist/src/scripts/ when built, src/scripts/ when run from source: the project root holds package.json.
let root = dirname(fileURLToPath(import.meta.url))
while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root)

const check = process.argv.includes('--check')
const files = [
  { path: join(root, 'README.md'), render: (text: string) => withReadmeTable(text) },
  { path: join(root, '.env.example'), render: () => renderEnvExample() }
]
let stale = false
for (const { path, render } of files) {
  const current = readFileSync(path, 'utf8')
  const rendered = render(current)
  if (rendered === current) continue
  stale = true
  if (check) console.error(`${path} is out of date: run npm run settings:docs`)
  else {
    writeFileSync(path, rendered)
    console.log(`wrote ${path}`)
  }
}
if (check && stale) process.exit(1)
