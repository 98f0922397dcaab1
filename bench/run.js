// npm run bench [-- --postgres[=URL]] [--duration=10] [--warmup=3] [--rounds=2] [--connections=50]
//                  [--only=me,orders,refresh,refresh-dpop,login,storm,memory] [--profile] [--out=NAME] [--server=PATH]
//                  [--node-args="--flag …"]
//
// The runner. Each scenario is a file in bench/scenarios/ that declares what it needs (the auth
// server, the bare route, the @fastify/jwt route, the in-process refresh ceiling, users, orders) and
// measures through the context this file hands it. The runner owns the options; lib/stage.js starts
// and stops the processes and sets up users; lib/measurements.js is the one re-measure loop and the
// rows; lib/report.js writes the report: results, and ratios against what a user would pick instead
// and against the stack's ceilings, with CPU µs per request beside every ratio. Exit code 0: a report.
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { round, summarize } from './lib/load.js'
import { DISTURBED_OTHERS_CPU, MAX_ATTEMPTS, best, createMeasurements } from './lib/measurements.js'
import { machineInfo, markdownReport, svgChart, textReport } from './lib/report.js'
import { createStage } from './lib/stage.js'
import { profileMarkdown, summarizeProfile } from './profile-summary.js'

/** In the order they run; memory comes last, as it reads what the others left behind. */
const SCENARIOS = ['me', 'orders', 'refresh', 'refresh-dpop', 'login', 'storm', 'memory']

function parseArgs (argv) {
  const options = { postgres: undefined, duration: 10, warmup: 3, rounds: 2, connections: 50, only: SCENARIOS, profile: false, out: undefined, server: undefined, nodeArgs: [], logLevel: undefined, keepServerLog: false }
  for (const arg of argv) {
    const [name, value] = arg.replace(/^--/, '').split(/=(.*)/s)
    if (name === 'postgres') options.postgres = value || process.env.BENCH_POSTGRES_URL || 'postgresql://postgres@127.0.0.1:5432/test'
    else if (['duration', 'warmup', 'rounds', 'connections'].includes(name)) options[name] = Number(value)
    else if (name === 'only') options.only = value.split(',').map((item) => item.trim())
    else if (name === 'profile') options.profile = true
    else if (name === 'out') options.out = value
    // Another entry point (e.g. an experimental variant of server.js); the run then counts as partial.
    else if (name === 'server') options.server = value
    // Node/V8 flags for the server process (e.g. GC settings); the run then counts as partial.
    else if (name === 'node-args') options.nodeArgs = value.split(' ').filter(Boolean)
    else if (name === 'log-level') options.logLevel = value
    else if (name === 'keep-server-log') options.keepServerLog = true
    else throw new Error(`unknown option ${arg}`)
  }
  for (const scenario of options.only) if (!SCENARIOS.includes(scenario)) throw new Error(`--only: unknown scenario ${scenario} (known: ${SCENARIOS.join(', ')})`)
  for (const name of ['duration', 'warmup', 'rounds', 'connections']) if (!(options[name] > 0)) throw new Error(`--${name} must be a positive number`)
  options.only = SCENARIOS.filter((name) => options.only.includes(name))
  options.database = options.postgres === undefined ? 'sqlite' : 'postgresql'
  const fullRun = options.only.length === SCENARIOS.length && !options.profile && options.server === undefined && options.nodeArgs.length === 0 && options.logLevel === undefined
  options.outName = options.out ?? (fullRun ? (options.database === 'sqlite' ? 'latest' : 'latest-postgresql') : undefined)
  return options
}

const log = (message) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)

/** What a scenario's run(ctx) gets: the stage, the measurements, and where its findings go. */
function scenarioContext (options, stage, measurements) {
  return {
    options,
    database: options.database,
    config: stage.config,
    log,
    served: stage.served,
    provide: stage.provide,
    bareContender: stage.bareContender,
    protectedContender: stage.protectedContender,
    refreshContender: stage.refreshContender,
    freshAccessTokens: stage.freshAccessTokens,
    freshRefreshTokens: stage.freshRefreshTokens,
    measure: measurements.measure,
    alternate: measurements.alternate,
    row: measurements.row,
    recordRun: measurements.recordRun,
    best,
    summarize,
    round,
    /** By scenario name, into the JSON. */
    results: {},
    /** Lines under "Notes". */
    summary: [],
    /** Lines for the report's "how to read it", one or more per scenario that ran. */
    methodNotes: []
  }
}

function buildReport (options, stage, measurements, context, startedAt, loadAverageAtStart) {
  const { runs, rows, bars } = measurements
  const { results, summary } = context
  const bare = measurements.bareRow()
  if (bare !== undefined) results.bare = bare
  if (stage.memoryTimeline.length > 0) results.memoryTimeline = stage.memoryTimeline
  const othersShares = runs.map((r) => r.othersCpu).filter((value) => value !== undefined)
  const othersAverage = othersShares.length === 0 ? 0 : othersShares.reduce((a, b) => a + b, 0) / othersShares.length
  if (othersAverage > 15) {
    summary.push(`WARNING: other processes used ${Math.round(othersAverage)}% of a core on average during the measured runs (up to ${Math.max(...othersShares)}%): the machine was not quiet, so these numbers are noisy. Rerun when nothing else is running.`)
  }
  const machine = machineInfo()
  const meta = {
    database: options.database,
    date: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine,
    scenarios: options.only,
    durationSeconds: options.duration,
    warmupSeconds: options.warmup,
    rounds: options.rounds,
    connections: options.connections,
    passwordHashConcurrency: stage.config.passwordHashConcurrency,
    elapsedSeconds: Math.round((Date.now() - startedAt) / 1000),
    loadAverageAtStart: loadAverageAtStart.map((value) => round(value, 2)),
    othersCpuAverage: round(othersAverage, 1),
    method: [
      `Processes: the auth server (\`node ${options.server ?? 'dist/src/server.js'}\` with the variables \`npm start\` sets (${Object.entries(stage.startEnv).map(([name, value]) => `${name}=${value}`).join(' ')}), NODE_ENV=production, ${options.logLevel === undefined ? `LOG_LEVEL unset (the server's default, ${stage.config.logLevel}: one access-log line a request, written to ${options.keepServerLog ? 'the log file' : '/dev/null'})` : `LOG_LEVEL=${options.logLevel}`}, METRICS_PORT set, ${options.database}), and as needed the bare route (bench/bare-server.js), the stock @fastify/jwt route (bench/jwt-server.js) and the in-process refresh ceiling (bench/refresh-ceiling.js), each a child process; autocannon drives the HTTP ones from the parent, on the same ${machine.cores}-core machine, over 127.0.0.1.`,
      `Throughput: a ${options.warmup} s warm-up of every contender of a scenario, then ${options.rounds} round(s) of each in turn (${options.duration} s each). A row shows its best round (highest req/s); a ratio divides it by the best run of the contender measured alternately with it (its req/s is in the ratio's cell).`,
      'req/s counts 2xx answers (or completed rotations) only; errors = socket errors + timeouts + non-2xx answers, summed over the measured rounds.',
      '"µs/req" is the CPU time the process under test (the auth server, or the bare, @fastify/jwt or ceiling process for their rows) used per answered request; "its µs/req" is that of what the row is compared with. Other load on the machine moves it much less than req/s.',
      `A run during which other processes used more than ${DISTURBED_OTHERS_CPU}% of a core is measured again (at most ${MAX_ATTEMPTS} attempts; the least disturbed is kept, "attempts" in the JSON).`,
      ...context.methodNotes
    ]
  }
  return { meta, rows, summary, bars, results, runs }
}

function writeProfile (options, stage) {
  const files = existsSync(stage.profileDir) ? readdirSync(stage.profileDir).filter((name) => name.endsWith('.cpuprofile')) : []
  if (files.length === 0) return log('no CPU profile was written (did the server exit cleanly?)')
  const summary = summarizeProfile(JSON.parse(readFileSync(join(stage.profileDir, files[0]), 'utf8')))
  const profileFile = join(stage.resultsDir, `profile-${options.database}.md`)
  writeFileSync(profileFile, profileMarkdown(summary, `CPU profile of the auth server (${options.database}; scenarios: ${options.only.join(', ')})`))
  log(`CPU profile summary written to ${profileFile}; the raw profile (open it in Chrome DevTools) stays at ${join(stage.profileDir, files[0])}`)
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  const startedAt = Date.now()
  const loadAverageAtStart = loadavg()
  const stage = await createStage(options, log)
  const measurements = createMeasurements({ options, databaseMeter: stage.databaseMeter, served: stage.served, log })
  const context = scenarioContext(options, stage, measurements)
  let interrupted = false
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      interrupted = true
      log(`${signal}: stopping the servers`)
      stage.stop().finally(() => process.exit(130))
    })
  }
  try {
    for (const name of options.only) {
      const scenario = (await import(`./scenarios/${name}.js`)).default
      for (const need of scenario.needs) await stage.provide[need]()
      await scenario.run(context)
      stage.noteMemory(name)
    }
  } finally {
    await stage.stop()
  }
  const report = buildReport(options, stage, measurements, context, startedAt, loadAverageAtStart)
  if (options.profile) writeProfile(options, stage)

  console.log(textReport(report))
  if (options.outName !== undefined) {
    const base = join(stage.resultsDir, options.outName)
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
    writeFileSync(`${base}.md`, markdownReport(report))
    writeFileSync(`${base}.svg`, svgChart(report))
    console.log(`\nWritten: bench/results/${options.outName}.json, .md, .svg (server log: bench/results/server-${options.database}.log)`)
  } else {
    console.log('\nA partial run (--only, --profile, --server or --node-args): no result files written; pass --out=NAME to keep them.')
  }
  // A profiled run keeps its work folder: the raw .cpuprofile is in it.
  if (!interrupted && !options.profile) rmSync(stage.workDir, { recursive: true, force: true })
}

await main()
