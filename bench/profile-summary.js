// Summarizes a V8 .cpuprofile (from `node --cpu-prof`): where the main thread's busy time went, by
// function (self and inclusive time) and by package. Idle time is left out of the percentages.
//
//   node bench/profile-summary.js <file.cpuprofile> [--top=30]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const PSEUDO = new Set(['(root)', '(program)', '(idle)', '(garbage collector)'])

function shortUrl (url) {
  if (url === '') return ''
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length)
  const dist = url.indexOf('/dist/')
  if (dist !== -1) return url.slice(dist + 1)
  return url.replace(/^file:\/\//, '')
}

/** Which package (or 'app' / 'node internals' / a V8 pseudo-frame) a frame belongs to. */
function packageOf (callFrame) {
  const { url, functionName } = callFrame
  if (url === '') return PSEUDO.has(functionName) ? functionName : '(native / V8 builtins)'
  if (url.startsWith('node:')) return 'node internals'
  const modules = url.lastIndexOf('/node_modules/')
  if (modules !== -1) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/')
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
  }
  if (url.includes('/dist/src/')) return 'app (dist/src)'
  return shortUrl(url)
}

function keyOf (callFrame) {
  const name = callFrame.functionName || '(anonymous)'
  if (callFrame.url === '') return name
  return `${name}  ${shortUrl(callFrame.url)}:${callFrame.lineNumber + 1}`
}

export function summarizeProfile (profile, top = 30) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map()
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  }
  const total = [...self.values()].reduce((sum, value) => sum + value, 0)
  let idle = 0
  for (const [id, time] of self) if (nodes.get(id).callFrame.functionName === '(idle)') idle += time
  const busy = total - idle

  const selfByFunction = new Map()
  const byPackage = new Map()
  for (const [id, time] of self) {
    const { callFrame } = nodes.get(id)
    if (callFrame.functionName === '(idle)') continue
    selfByFunction.set(keyOf(callFrame), (selfByFunction.get(keyOf(callFrame)) ?? 0) + time)
    byPackage.set(packageOf(callFrame), (byPackage.get(packageOf(callFrame)) ?? 0) + time)
  }

  // Inclusive time: a node's own time plus its subtree's, counted once per function even under recursion.
  const inclusiveOfNode = new Map()
  function inclusive (id) {
    if (inclusiveOfNode.has(id)) return inclusiveOfNode.get(id)
    const node = nodes.get(id)
    let sum = self.get(id) ?? 0
    for (const child of node.children ?? []) sum += inclusive(child)
    inclusiveOfNode.set(id, sum)
    return sum
  }
  const inclusiveByFunction = new Map()
  const root = profile.nodes[0].id
  const stack = [{ id: root, open: new Set() }]
  while (stack.length > 0) {
    const { id, open } = stack.pop()
    const node = nodes.get(id)
    const key = keyOf(node.callFrame)
    let childOpen = open
    if (!PSEUDO.has(node.callFrame.functionName) && !open.has(key)) {
      inclusiveByFunction.set(key, (inclusiveByFunction.get(key) ?? 0) + inclusive(id))
      childOpen = new Set(open).add(key)
    }
    for (const child of node.children ?? []) stack.push({ id: child, open: childOpen })
  }

  const rank = (map, limit) => [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, limit)
    .map(([name, time]) => ({ name, ms: Math.round(time / 1000), percentOfBusy: Math.round((time / busy) * 1000) / 10 }))
  return {
    totalMs: Math.round(total / 1000),
    busyMs: Math.round(busy / 1000),
    selfTop: rank(selfByFunction, top),
    inclusiveTop: rank(inclusiveByFunction, top),
    packages: rank(byPackage, 25)
  }
}

export function profileMarkdown (summary, title) {
  const table = (rows, header) => [
    `| ${header} | ms | % of busy |`, '|---|---:|---:|',
    ...rows.map((row) => `| \`${row.name.replace(/\|/g, '\\|')}\` | ${row.ms} | ${row.percentOfBusy} |`)
  ].join('\n')
  return [
    `# ${title}`, '',
    `Main-thread samples: ${summary.totalMs} ms, of which busy (not idle) ${summary.busyMs} ms. Percentages are of busy time.`, '',
    '## By package (self time)', '', table(summary.packages, 'package'), '',
    '## Hottest functions (self time)', '', table(summary.selfTop, 'function'), '',
    '## Hottest functions (inclusive time)', '', table(summary.inclusiveTop, 'function'), ''
  ].join('\n')
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: node bench/profile-summary.js <file.cpuprofile> [--top=30]')
    process.exit(2)
  }
  const top = Number((process.argv.find((arg) => arg.startsWith('--top=')) ?? '--top=30').slice(6))
  console.log(profileMarkdown(summarizeProfile(JSON.parse(readFileSync(file, 'utf8')), top), file))
}
