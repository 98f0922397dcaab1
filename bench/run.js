// npm run bench [-- --postgres[=URL]] [--duration=10] [--warmup=3] [--rounds=2] [--connections=50]
//                  [--only=me,orders,refresh,login,storm,memory] [--profile] [--out=NAME] [--server=PATH]
//                  [--node-args="--flag …"]
//
// The runner. Each scenario is a file in bench/scenarios/ that declares what it needs (the auth
// server, the bare route, the @fastify/jwt route, the in-process refresh ceiling, users, orders) and
// measures through the context this file gives it. The runner owns the options, starts and stops the
// processes, sets up users and sessions through the public API, repeats a run the machine disturbed,
// and writes the report: results and ratios against what a user would pick instead and against the
// stack's ceilings, every ratio with the server CPU per request beside it. Exit code 0: a report.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { createClient, mapLimit } from './lib/accounts.js'
import { autocannonLoad, databaseCpuMeter, measureCpu, round, summarize, tokenPerConnection } from './lib/load.js'
import { freePort, memoryOf, startChild, watchMemory } from './lib/processes.js'
import { machineInfo, markdownReport, svgChart, textTable } from './lib/report.js'
import { configVariables, distDir, serverConfig } from './lib/server-internals.js'
import { profileMarkdown, summarizeProfile } from './profile-summary.js'

const here = dirname(fileURLToPath(import.meta.url))
const root = dirname(here)

/** In the order they run; memory comes last, as it reads what the others left behind. */
const SCENARIOS = ['me', 'orders', 'refresh', 'login', 'storm', 'memory']

// A run during which other processes used more than this share of a core is repeated (the machine is
// shared), up to MAX_ATTEMPTS times; the least disturbed attempt is kept.
const DISTURBED_OTHERS_CPU = 25
const MAX_ATTEMPTS = 3
const ORDERS_PER_USER = 5

function parseArgs (argv) {
  const options = { postgres: undefined, duration: 10, warmup: 3, rounds: 2, connections: 50, only: SCENARIOS, profile: false, out: undefined, server: undefined, nodeArgs: [] }
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
    else throw new Error(`unknown option ${arg}`)
  }
  for (const scenario of options.only) if (!SCENARIOS.includes(scenario)) throw new Error(`--only: unknown scenario ${scenario} (known: ${SCENARIOS.join(', ')})`)
  for (const name of ['duration', 'warmup', 'rounds', 'connections']) if (!(options[name] > 0)) throw new Error(`--${name} must be a positive number`)
  options.only = SCENARIOS.filter((name) => options.only.includes(name))
  options.fullRun = options.only.length === SCENARIOS.length && !options.profile && options.server === undefined && options.nodeArgs.length === 0
  options.database = options.postgres === undefined ? 'sqlite' : 'postgresql'
  options.outName = options.out ?? (options.fullRun ? (options.database === 'sqlite' ? 'latest' : 'latest-postgresql') : undefined)
  return options
}

const log = (message) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`)

/**
 * The variables `npm start` sets in front of its command (package.json), e.g. the allocator setting
 * that keeps password hashing from piling up memory: the bench runs the server the way users start it.
 */
function startScriptEnv () {
  const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const assignments = scripts.start.match(/^(\s*[A-Z_][A-Z0-9_]*=\S+)+/)?.[0] ?? ''
  return Object.fromEntries(assignments.trim().split(/\s+/).filter(Boolean).map((pair) => pair.split('=', 2)))
}

/** Runs once with `work()` the first time it is asked for, then hands back the same promise. */
function once (work) {
  let promise
  return () => (promise ??= work())
}

/** Of several runs, the one with the highest req/s (the least disturbed by anything else on the machine). */
const best = (list) => list.reduce((a, b) => (b.reqPerSec > a.reqPerSec ? b : a))

/**
 * One benchmark run: its processes, its users, its measured runs and its report. Everything the
 * scenarios share lives here, made per run.
 */
async function createBench (options) {
  const { database } = options
  const resultsDir = join(here, 'results')
  mkdirSync(resultsDir, { recursive: true })
  const workDir = mkdtempSync(join(tmpdir(), 'auth-bench-'))
  const profileDir = join(workDir, 'profile')
  const logFile = join(resultsDir, `server-${database}.log`)
  writeFileSync(logFile, '')
  const postgresSchema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`
  const databaseUrl = database === 'sqlite'
    ? `file:${join(workDir, 'bench.db')}`
    : (() => { const url = new URL(options.postgres); url.searchParams.set('schema', postgresSchema); return url.toString() })()
  // PostgreSQL runs on this machine too: its CPU belongs to the system under test, not to "others".
  const databaseMeter = databaseCpuMeter(database === 'postgresql' && ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(options.postgres).hostname) ? 'postgres' : null)

  const serverEntry = options.server === undefined ? join(distDir, 'server.js') : resolve(options.server)
  if (!existsSync(serverEntry)) throw new Error(`${serverEntry} is missing: run \`npm run build\` first (npm run bench does)`)
  // Every variable the server's config reads (from its own schema), so none leaks in from the caller's shell.
  const configNames = await configVariables()
  function cleanEnv () {
    const env = { ...process.env }
    for (const name of configNames) delete env[name]
    // npm passes its own settings to scripts; the servers need none of them.
    for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name]
    return env
  }
  const startEnv = startScriptEnv()
  const jwtSecret = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwx'
  const serverEnv = {
    ...cleanEnv(),
    ...startEnv,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    LOG_LEVEL: 'warn',
    // The per-address limits would stop a load generator that sends everything from 127.0.0.1.
    RATE_LIMIT_MAX: '1000000',
    LOGIN_MAX_FAILURES: '1000',
    JWT_SECRET: jwtSecret,
    // The caller's choice wins; otherwise the server's own default (src/config.ts).
    ...(process.env.PASSWORD_HASH_CONCURRENCY ? { PASSWORD_HASH_CONCURRENCY: process.env.PASSWORD_HASH_CONCURRENCY } : {})
  }
  // What the server will make of that environment, by its own code.
  const config = await serverConfig(serverEnv, workDir)

  const runs = []
  const rows = []
  const bars = []
  const summary = []
  const results = {}
  const children = []
  const memoryTimeline = []
  const served = { protected: 0, refreshes: 0 }
  const startedAt = Date.now()
  const loadAverageAtStart = loadavg()

  async function start (spec) {
    const child = await startChild({ cwd: root, logFile, ...spec })
    children.push(child)
    return child
  }

  const provide = {
    bare: once(async () => {
      const port = await freePort()
      const child = await start({ name: 'bare server', script: join(here, 'bare-server.js'), env: { ...cleanEnv(), PORT: String(port) }, readyUrl: `http://127.0.0.1:${port}/bare` })
      return { pid: child.pid, url: `http://127.0.0.1:${port}` }
    }),
    jwt: once(async () => {
      const port = await freePort()
      const child = await start({ name: '@fastify/jwt server', script: join(here, 'jwt-server.js'), env: { ...cleanEnv(), JWT_SECRET: jwtSecret, PORT: String(port) }, readyUrl: `http://127.0.0.1:${port}/health` })
      return { pid: child.pid, url: `http://127.0.0.1:${port}` }
    }),
    server: once(async () => {
      const port = await freePort()
      log(`starting the auth server on ${database} (${database === 'sqlite' ? databaseUrl : `schema ${postgresSchema}`})`)
      const child = await start({
        name: 'auth server',
        script: serverEntry,
        nodeArgs: [...options.nodeArgs, ...(options.profile ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [])],
        env: { ...serverEnv, PORT: String(port) },
        // Not the project folder: the server would read a developer's .env from there.
        cwd: workDir,
        readyUrl: `http://127.0.0.1:${port}/health`
      })
      const url = `http://127.0.0.1:${port}`
      const memoryWatch = watchMemory(child.pid)
      const startupRss = memoryOf(child.pid).rss
      memoryTimeline.push({ after: 'start', rssMiB: round(startupRss / 2 ** 20, 1) })
      return { pid: child.pid, url, api: createClient(url), memoryWatch, startupRss, stop: child.stop }
    }),
    // The in-process refresh ceiling: the server's SessionService in a child of its own, same database.
    ceiling: once(async () => {
      await provide.server() // the server has applied the migrations
      const child = await start({ name: 'refresh ceiling', script: join(here, 'refresh-ceiling.js'), env: { ...serverEnv, PORT: '0' }, cwd: workDir })
      return { pid: child.pid, request: child.request }
    }),
    // One user per connection, each with one session for the protected scenarios.
    users: once(async () => {
      const { api } = await provide.server()
      log(`registering ${options.connections} users and logging them in`)
      const usernames = Array.from({ length: options.connections }, (_, index) => `bench-user-${index}`)
      await mapLimit(usernames, 4, (username) => api.register(username))
      const sessions = await mapLimit(usernames, 4, (username) => api.login(username))
      noteMemory('setup')
      return { usernames, sessions }
    }),
    orders: once(async () => {
      const { api } = await provide.server()
      const { sessions } = await provide.users()
      await mapLimit(sessions, 8, async (session) => {
        for (let index = 0; index < ORDERS_PER_USER; index++) await api.createOrder(session.accessToken, `item ${index}`, index + 1)
      })
      return { perUser: ORDERS_PER_USER }
    })
  }

  function noteMemory (after) {
    const server = children.find((child) => child.name === 'auth server')
    if (server === undefined || server.exited !== undefined) return
    const { rss, peakRss } = memoryOf(server.pid)
    memoryTimeline.push({ after, rssMiB: round(rss / 2 ** 20, 1), peakMiB: round(peakRss / 2 ** 20, 1) })
  }

  /**
   * One measured run, repeated while other processes disturb it. A contender is { label, pid, load,
   * prepare?, counts? }: `prepare()` runs before each attempt, outside the measurement; `load(seconds)`
   * resolves with an outcome (lib/load.js); `counts` ('protected' | 'refreshes') adds the answers the
   * auth server gave to the memory scenario's tally.
   */
  async function measure (contender, { round: roundNumber = 0, warmup = false } = {}) {
    const seconds = warmup ? options.warmup : options.duration
    const maxAttempts = warmup ? 1 : MAX_ATTEMPTS
    const label = warmup ? `${contender.label} (warm-up)` : contender.label
    let kept
    let attempts = 0
    while (attempts < maxAttempts) {
      attempts++
      await contender.prepare?.()
      const run = { label, ...await measureCpu(contender.pid, databaseMeter, () => contender.load(seconds)) }
      if (contender.counts !== undefined) served[contender.counts] += run.requests
      if (kept === undefined || run.othersCpu < kept.othersCpu) kept = run
      if (run.othersCpu <= DISTURBED_OTHERS_CPU) break
      if (attempts < maxAttempts) log(`${label}: other processes used ${run.othersCpu}% of a core meanwhile; measuring again`)
    }
    kept = { ...kept, attempts, id: contender.id }
    if (!warmup) runs.push({ ...kept, round: roundNumber })
    return kept
  }

  /** A warm-up of each contender, then `rounds` × (each contender in turn). Returns each one's runs by id. */
  async function alternate (title, contenders) {
    log(`${title}: warm-up`)
    for (const contender of contenders) await measure(contender, { warmup: true })
    const byId = Object.fromEntries(contenders.map((contender) => [contender.id, []]))
    for (let index = 1; index <= options.rounds; index++) {
      log(`${title}: round ${index}/${options.rounds}`)
      for (const contender of contenders) byId[contender.id].push(await measure(contender, { round: index }))
    }
    return byId
  }

  const context = {
    options,
    database,
    config,
    log,
    served,
    results,
    summary,
    provide,
    measure,
    alternate,
    best,
    noteMemory,
    /** Records a run measured some other way (e.g. the login storm beside a paced load). */
    recordRun: (run) => runs.push(run),
    summarize,
    round,
    /** Lines for the report's "how to read it", one per scenario that ran. */
    methodNotes: [],
    /** The bare route as a contender; its runs are also gathered into the report's first row. */
    async bareContender () {
      const bare = await provide.bare()
      return { id: 'bare', label: 'bare GET /bare', pid: bare.pid, load: autocannonLoad(() => ({ url: `${bare.url}/bare`, connections: options.connections })) }
    },
    /** An autocannon contender against the auth server with one access token per connection. */
    async protectedContender (id, label, path, tokens, connections = options.connections) {
      const server = await provide.server()
      return { id, label, pid: server.pid, counts: 'protected', load: autocannonLoad(() => ({ url: `${server.url}${path}`, connections, setupClient: tokenPerConnection(tokens) })) }
    },
    /** Rotates every protected session once: fresh access tokens for a scenario (they live 900 s). */
    async freshAccessTokens () {
      const { api } = await provide.server()
      const { sessions } = await provide.users()
      const rotated = await mapLimit(sessions, 8, (session) => api.refresh(session.refreshToken))
      rotated.forEach((tokens, index) => { sessions[index] = tokens })
      return rotated.map((tokens) => tokens.accessToken)
    },
    /** One new session per chain (a login each): a refresh run never inherits a chain from another run. */
    async freshRefreshTokens (count) {
      const { api } = await provide.server()
      const { usernames } = await provide.users()
      const sessions = await mapLimit(usernames.slice(0, count), 4, (username) => api.login(username))
      return sessions.map((session) => session.refreshToken)
    },
    /**
     * A row of the results table. `comparisons` are { against, reference, ratio? }: `reference` is a
     * run (or { reqPerSec, serverCpuPerRequestUs }) the row is divided by; the ratio is row ÷ reference
     * unless given. Each comparison is also a bar of the chart unless `chart: false`.
     */
    row (label, run, { comparisons = [], value, note, bar } = {}) {
      const compared = comparisons.map(({ against, reference, ratio, text, chart = true, unit = 'req/s' }) => {
        const value = ratio ?? run.reqPerSec / reference.reqPerSec
        if (chart) bars.push({ axis: 'log', label: `${label} ÷ ${against}`, value, valueText: `${value.toFixed(3)} × (${fmtNumber(run.reqPerSec)} vs ${fmtNumber(reference.reqPerSec)} ${unit}; ${run.serverCpuPerRequestUs ?? '-'} vs ${reference.serverCpuPerRequestUs ?? '-'} µs/req)` })
        return { against, ratio: round(value, 4), text: text ?? `${value.toFixed(3)} × ${against}`, referenceReqPerSec: reference.reqPerSec, referenceUsPerRequest: reference.serverCpuPerRequestUs }
      })
      if (bar !== undefined) bars.push(bar)
      rows.push({
        scenario: label,
        connections: run?.connections,
        reqPerSec: run?.reqPerSec,
        p50: run?.p50,
        p99: run?.p99,
        errors: run?.errors,
        usPerRequest: run?.serverCpuPerRequestUs,
        databaseCpu: run?.databaseCpu,
        comparisons: compared,
        value,
        note
      })
      return compared
    }
  }

  async function stop () {
    if (children.some((child) => child.name === 'auth server')) (await provide.server()).memoryWatch.stop()
    while (children.length > 0) await children.pop().stop()
    if (database === 'postgresql') {
      const client = new pg.Client({ connectionString: options.postgres })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${postgresSchema}" CASCADE`)
      await client.end()
    }
  }

  function report () {
    const bareRuns = runs.filter((run) => run.id === 'bare')
    if (bareRuns.length > 0) {
      const top = best(bareRuns)
      rows.unshift({ scenario: 'bare GET /bare (bench/bare-server.js)', connections: top.connections, reqPerSec: top.reqPerSec, p50: top.p50, p99: top.p99, errors: bareRuns.reduce((sum, r) => sum + r.errors, 0), usPerRequest: top.serverCpuPerRequestUs, comparisons: [], note: 'best of all bare runs' })
      results.bare = { best: top, runs: bareRuns }
    }
    if (memoryTimeline.length > 0) results.memoryTimeline = memoryTimeline
    const othersShares = runs.map((r) => r.othersCpu).filter((value) => value !== undefined)
    const othersAverage = othersShares.length === 0 ? 0 : othersShares.reduce((a, b) => a + b, 0) / othersShares.length
    if (othersAverage > 15) {
      summary.push(`WARNING: other processes used ${Math.round(othersAverage)}% of a core on average during the measured runs (up to ${Math.max(...othersShares)}%): the machine was not quiet, so these numbers are noisy. Rerun when nothing else is running.`)
    }
    const machine = machineInfo()
    const meta = {
      database,
      date: new Date().toISOString(),
      command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
      machine,
      scenarios: options.only,
      durationSeconds: options.duration,
      warmupSeconds: options.warmup,
      rounds: options.rounds,
      connections: options.connections,
      passwordHashConcurrency: config.passwordHashConcurrency,
      elapsedSeconds: Math.round((Date.now() - startedAt) / 1000),
      loadAverageAtStart: loadAverageAtStart.map((value) => round(value, 2)),
      othersCpuAverage: round(othersAverage, 1),
      method: [
        `Processes: the auth server (\`node ${options.server ?? 'dist/src/server.js'}\` with the variables \`npm start\` sets (${Object.entries(startEnv).map(([name, value]) => `${name}=${value}`).join(' ')}), NODE_ENV=production, LOG_LEVEL=warn, ${database}), and as needed the bare route (bench/bare-server.js), the stock @fastify/jwt route (bench/jwt-server.js) and the in-process refresh ceiling (bench/refresh-ceiling.js), each a child process; autocannon drives the HTTP ones from the parent, on the same ${machine.cores}-core machine, over 127.0.0.1.`,
        `Throughput: a ${options.warmup} s warm-up of every contender of a scenario, then ${options.rounds} rounds of each in turn (${options.duration} s each). A row shows its best round (highest req/s); a ratio divides it by the best run of the other contender measured alternately with it.`,
        'req/s counts 2xx answers (or completed rotations) only; errors = socket errors + timeouts + non-2xx answers, summed over the measured rounds.',
        '"µs/req" is the CPU time the process under test (the auth server, or the bare, @fastify/jwt or ceiling process for their rows) used per answered request: other load on the machine moves it much less than req/s.',
        `A run during which other processes used more than ${DISTURBED_OTHERS_CPU}% of a core is measured again (at most ${MAX_ATTEMPTS} attempts; the least disturbed is kept, "attempts" in the JSON).`,
        ...context.methodNotes
      ]
    }
    return { meta, rows, summary, bars, results, runs }
  }

  return { context, provide, stop, report, noteMemory, resultsDir, workDir, profileDir, logFile }
}

const fmtNumber = (value) => (value === undefined ? '-' : Math.round(value).toLocaleString('en-US'))

function printReport (report) {
  const { meta, rows, runs, summary, results } = report
  console.log('')
  console.log(`Benchmark on ${meta.database}: ${meta.machine.cpuModel}, ${meta.machine.cores} cores, Node ${meta.machine.node}`)
  console.log('')
  console.log(textTable(rows))
  console.log('')
  console.log('Every measured run (CPU as % of one core; µs/req = CPU time of the process under test per answered request):')
  const cell = (value, width, suffix = '') => (value === undefined ? '-' : `${value}${suffix}`).padStart(width)
  for (const r of runs) {
    const databaseCell = meta.database === 'postgresql' ? `  db ${cell(r.databaseCpu, 4, '%')}` : ''
    console.log(`  ${`${r.label} [${r.round}]`.padEnd(58)} ${cell(Math.round(r.reqPerSec), 7)} req/s  p50 ${cell(r.p50, 7)}  p99 ${cell(r.p99, 8)}  err ${cell(r.errors, 4)}  server ${cell(r.serverCpu, 4, '%')} ${cell(r.serverCpuPerRequestUs, 6)} µs/req  load-gen ${cell(r.loadgenCpu, 4, '%')}${databaseCell}  others ${cell(r.othersCpu, 4, '%')}`)
  }
  if (results.memoryTimeline !== undefined) {
    console.log('')
    console.log(`Server RSS after each phase (MiB): ${results.memoryTimeline.map((entry) => `${entry.after} ${Math.round(entry.rssMiB)}`).join(', ')}`)
  }
  if (summary.length > 0) {
    console.log('')
    console.log('Notes:')
    for (const line of summary) console.log(`  ${line}`)
  }
}

async function main () {
  const options = parseArgs(process.argv.slice(2))
  const bench = await createBench(options)
  let interrupted = false
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      interrupted = true
      log(`${signal}: stopping the servers`)
      bench.stop().finally(() => process.exit(130))
    })
  }
  try {
    for (const name of options.only) {
      const scenario = (await import(`./scenarios/${name}.js`)).default
      for (const need of scenario.needs) await bench.provide[need]()
      await scenario.run(bench.context)
      bench.noteMemory(name)
    }
  } finally {
    await bench.stop()
  }
  const report = bench.report()

  if (options.profile) {
    const { profileDir, resultsDir } = bench
    const files = existsSync(profileDir) ? readdirSync(profileDir).filter((name) => name.endsWith('.cpuprofile')) : []
    if (files.length === 0) {
      log('no CPU profile was written (did the server exit cleanly?)')
    } else {
      const summaryOfProfile = summarizeProfile(JSON.parse(readFileSync(join(profileDir, files[0]), 'utf8')))
      const profileFile = join(resultsDir, `profile-${options.database}.md`)
      writeFileSync(profileFile, profileMarkdown(summaryOfProfile, `CPU profile of the auth server (${options.database}; scenarios: ${options.only.join(', ')})`))
      log(`CPU profile summary written to ${profileFile}; the raw profile (open it in Chrome DevTools) stays at ${join(profileDir, files[0])}`)
    }
  }

  printReport(report)
  if (options.outName !== undefined) {
    const base = join(bench.resultsDir, options.outName)
    writeFileSync(`${base}.json`, JSON.stringify(report, null, 2) + '\n')
    writeFileSync(`${base}.md`, markdownReport(report))
    writeFileSync(`${base}.svg`, svgChart(report))
    console.log(`\nWritten: bench/results/${options.outName}.json, .md, .svg (server log: bench/results/server-${options.database}.log)`)
  } else {
    console.log('\nA partial run (--only, --profile, --server or --node-args): no result files written; pass --out=NAME to keep them.')
  }
  // A profiled run keeps its work folder: the raw .cpuprofile is in it.
  if (!interrupted && !options.profile) rmSync(bench.workDir, { recursive: true, force: true })
}

await main()
