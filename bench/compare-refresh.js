// POST /auth/refresh of this build against another build of the server, interleaved in one run:
//   node bench/compare-refresh.js --other=PATH/dist/src/server.js [--postgres[=URL]] [--rounds=4]
//                                 [--duration=5] [--warmup=2] [--connections=50] [--profile]
// Both servers run side by side, each on a database of its own, with the same token-chain load
// (bench/lib/load.js refreshChains); rounds alternate A, B, A, B… so that the machine's other load
// falls on both alike. Prints every round (req/s, p50/p99, server CPU µs per rotation, per-chain
// spread) and the medians, A ÷ B. With --profile each server writes a V8 CPU profile when it stops
// (its path is printed; read it with bench/profile-summary.js). Build the other tree first (`npm run build` there).
import { autocannonLoad, chainSpread, measureCpu, refreshChains } from './lib/load.js'
import { createStage } from './lib/stage.js'

const options = { postgres: undefined, duration: 5, warmup: 2, rounds: 4, connections: 50, other: undefined, nodeArgs: [], profile: false }
for (const arg of process.argv.slice(2)) {
  const [name, value] = arg.replace(/^--/, '').split(/=(.*)/s)
  if (name === 'postgres') options.postgres = value || process.env.BENCH_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/test'
  else if (['duration', 'warmup', 'rounds', 'connections'].includes(name)) options[name] = Number(value)
  else if (name === 'other') options.other = value
  else if (name === 'profile') options.profile = true
  else throw new Error(`unknown option ${arg}`)
}
if (options.other === undefined) throw new Error('--other=PATH (the other build\'s dist/src/server.js) is required')
options.database = options.postgres === undefined ? 'sqlite' : 'postgresql'

const log = (message) => process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${message}\n`)
const sides = [
  { id: 'A', label: 'this build', stage: await createStage({ ...options, server: undefined }, log) },
  { id: 'B', label: options.other, stage: await createStage({ ...options, server: options.other }, log) }
]
const median = (values) => { const sorted = [...values].sort((a, b) => a - b); return sorted[Math.floor(sorted.length / 2)] }
try {
  const contenders = []
  for (const side of sides) {
    const server = await side.stage.provide.server()
    await side.stage.provide.users()
    let chains
    const load = autocannonLoad(() => ({ url: `${server.url}/auth/refresh`, connections: options.connections, setupClient: chains.setupClient }))
    contenders.push({
      side,
      contender: {
        id: side.id,
        label: `${side.id} POST /auth/refresh`,
        pid: server.pid,
        prepare: async () => { chains = refreshChains(await side.stage.freshRefreshTokens(options.connections)) },
        load: async (seconds) => ({ ...await load(seconds), chains: chainSpread(chains.perChain) })
      }
    })
  }
  // One attempt per round (no re-measuring when the machine is busy): the rounds alternate instead.
  const measure = async (side, contender, seconds) => {
    await contender.prepare()
    return measureCpu(contender.pid, side.stage.databaseMeter, () => contender.load(seconds))
  }
  for (const { side, contender } of contenders) await measure(side, contender, options.warmup)
  const runs = { A: [], B: [] }
  for (let round = 1; round <= options.rounds; round++) {
    // Alternate which goes first, so neither always follows the other.
    const order = round % 2 === 1 ? contenders : [...contenders].reverse()
    for (const { side, contender } of order) {
      const run = await measure(side, contender, options.duration)
      runs[side.id].push(run)
      const { min, median: mid, max } = run.chains
      console.log(`round ${round} ${side.id}: ${run.reqPerSec} req/s  p50 ${run.p50}  p99 ${run.p99}  ${run.serverCpuPerRequestUs} µs/req  others ${run.othersCpu}%  chains ${min}/${mid}/${max}  db ${run.databaseCpu ?? "-"}%  errors ${run.errors}`)
    }
  }
  const summary = (list) => ({ reqPerSec: median(list.map((r) => r.reqPerSec)), us: median(list.map((r) => r.serverCpuPerRequestUs)), p50: median(list.map((r) => r.p50)), p99: median(list.map((r) => r.p99)) })
  const [a, b] = [summary(runs.A), summary(runs.B)]
  console.log(`\n${options.database}, ${options.connections} chains, ${options.rounds} rounds of ${options.duration} s, medians:`)
  console.log(`A (${sides[0].label}): ${a.reqPerSec} req/s, ${a.us} µs/req, p50 ${a.p50} ms, p99 ${a.p99} ms`)
  console.log(`B (${sides[1].label}): ${b.reqPerSec} req/s, ${b.us} µs/req, p50 ${b.p50} ms, p99 ${b.p99} ms`)
  console.log(`A ÷ B: ${(a.reqPerSec / b.reqPerSec).toFixed(3)} × req/s, ${(a.us / b.us).toFixed(3)} × µs/req`)
} finally {
  for (const side of sides) await side.stage.stop()
}
if (options.profile) for (const side of sides) console.log(`${side.id} CPU profile: ${side.stage.profileDir}`)
