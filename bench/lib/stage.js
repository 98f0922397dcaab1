// The stage of one benchmark run: the processes under test and the users they serve, each provided
// once, when the first scenario that needs it asks, and all stopped at the end. Users and sessions
// are set up through the public API only, as a client would.
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { createClient, mapLimit } from './accounts.js'
import { autocannonLoad, chainSpread, databaseCpuMeter, refreshChains, round, tallyBreaks, tokenPerConnection } from './load.js'
import { freePort, memoryOf, startChild, watchMemory } from './processes.js'
import { configVariables, distDir, serverConfig } from './server-internals.js'

const benchDir = dirname(dirname(fileURLToPath(import.meta.url)))
const root = dirname(benchDir)
const ORDERS_PER_USER = 5
const JWT_SECRET = 'bench-secret-0123456789-abcdefghijklmnopqrstuvwx'

/**
 * The variables `npm start` sets in front of its command (package.json), e.g. the allocator setting
 * that keeps password hashing from piling up memory: the bench runs the server the way users start it.
 */
function startScriptEnv () {
  const { scripts } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const assignments = scripts.start.match(/^(\s*[A-Z_][A-Z0-9_]*=\S+)+/)?.[0] ?? ''
  return Object.fromEntries(assignments.trim().split(/\s+/).filter(Boolean).map((pair) => pair.split('=', 2)))
}

/** Runs `work()` the first time it is asked for, then hands back the same promise. */
function once (work) {
  let promise
  return () => (promise ??= work())
}

export async function createStage (options, log) {
  const { database } = options
  const resultsDir = join(benchDir, 'results')
  mkdirSync(resultsDir, { recursive: true })
  const workDir = mkdtempSync(join(tmpdir(), 'auth-bench-'))
  const profileDir = join(workDir, 'profile')
  const logFile = join(resultsDir, `server-${database}.log`)
  writeFileSync(logFile, '')
  const postgresSchema = `bench_${process.pid}_${randomBytes(3).toString('hex')}`
  let databaseUrl = `file:${join(workDir, 'bench.db')}`
  if (database === 'postgresql') {
    const url = new URL(options.postgres)
    url.searchParams.set('schema', postgresSchema)
    databaseUrl = url.toString()
  }
  // PostgreSQL runs on this machine too: its CPU belongs to the system under test, not to "others".
  const localDatabase = database === 'postgresql' && ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(options.postgres).hostname)
  const databaseMeter = databaseCpuMeter(localDatabase ? 'postgres' : null)

  const serverEntry = options.server === undefined ? join(distDir, 'server.js') : resolve(options.server)
  if (!existsSync(serverEntry)) throw new Error(`${serverEntry} is missing: run \`npm run build\` first (npm run bench does)`)
  // Every variable the server's config reads (its own schema's names), so none leaks in from the caller's shell.
  const configNames = await configVariables()
  function cleanEnv () {
    const env = { ...process.env }
    for (const name of configNames) delete env[name]
    // npm passes its own settings to scripts; the servers need none of them.
    for (const name of Object.keys(env)) if (name.startsWith('npm_')) delete env[name]
    return env
  }
  const startEnv = startScriptEnv()
  const serverEnv = {
    ...cleanEnv(),
    ...startEnv,
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    DATABASE_URL: databaseUrl,
    // Logging as shipped: the server's own default level unless --log-level says otherwise.
    ...(options.logLevel === undefined ? {} : { LOG_LEVEL: options.logLevel }),
    // As shipped to operators: the Prometheus listener on, so every request pays for its histogram.
    METRICS_PORT: String(await freePort()),
    // The per-address limits would stop a load generator that sends everything from 127.0.0.1.
    RATE_LIMIT_MAX: '1000000',
    LOGIN_MAX_FAILURES: '1000',
    JWT_SECRET,
    // The caller's choice wins; otherwise the server's own default (src/config.ts).
    ...(process.env.PASSWORD_HASH_CONCURRENCY ? { PASSWORD_HASH_CONCURRENCY: process.env.PASSWORD_HASH_CONCURRENCY } : {})
  }
  // What the server will make of that environment, by its own code.
  const config = await serverConfig(serverEnv, workDir)

  const children = []
  const memoryTimeline = []
  /** Answers the auth server gave, for the memory scenario: { protected, refreshes }. */
  const served = { protected: 0, refreshes: 0 }

  async function start (spec) {
    const child = await startChild({ cwd: root, logFile, ...spec })
    children.push(child)
    return child
  }
  async function httpChild (name, script, env, readyPath) {
    const port = await freePort()
    const child = await start({ name, script: join(benchDir, script), env: { ...cleanEnv(), ...env, PORT: String(port) }, readyUrl: `http://127.0.0.1:${port}${readyPath}` })
    return { pid: child.pid, url: `http://127.0.0.1:${port}` }
  }

  /** What a scenario may name in its `needs`. */
  const provide = {
    bare: once(() => httpChild('bare server', 'bare-server.js', {}, '/bare')),
    jwt: once(() => httpChild('@fastify/jwt server', 'jwt-server.js', { JWT_SECRET }, '/health')),
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
        // Its log lines (at info, one per request) are written and discarded: a full run would fill a
        // file with gigabytes. Its standard error (crashes) still goes to the log file.
        stdoutFile: options.keepServerLog ? logFile : '/dev/null',
        readyUrl: `http://127.0.0.1:${port}/health`
      })
      const url = `http://127.0.0.1:${port}`
      const startupRss = memoryOf(child.pid).rss
      memoryTimeline.push({ after: 'start', rssMiB: round(startupRss / 2 ** 20, 1) })
      return { pid: child.pid, url, api: createClient(url), memoryWatch: watchMemory(child.pid), startupRss }
    }),
    // The in-process refresh ceiling: the server's SessionService in a process of its own, same database
    // (with a metrics listener of its own, so it counts its rotations as the server does).
    ceiling: once(async () => {
      await provide.server() // which has applied the migrations
      const child = await start({ name: 'refresh ceiling', script: join(benchDir, 'refresh-ceiling.js'), env: { ...serverEnv, PORT: '0', METRICS_PORT: String(await freePort()) }, cwd: workDir })
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

  const authServer = () => children.find((child) => child.name === 'auth server' && child.exited === undefined)
  function noteMemory (after) {
    const server = authServer()
    if (server === undefined) return
    const { rss, peakRss } = memoryOf(server.pid)
    memoryTimeline.push({ after, rssMiB: round(rss / 2 ** 20, 1), peakMiB: round(peakRss / 2 ** 20, 1) })
  }

  /** One new session per chain (a login each): a refresh run never inherits a chain from another run. */
  async function freshRefreshTokens (count) {
    const { api } = await provide.server()
    const { usernames } = await provide.users()
    const sessions = await mapLimit(usernames.slice(0, count), 4, (username) => api.login(username))
    return sessions.map((session) => session.refreshToken)
  }

  async function stop () {
    if (authServer() !== undefined) (await provide.server()).memoryWatch.stop()
    while (children.length > 0) await children.pop().stop()
    if (database === 'postgresql') {
      const client = new pg.Client({ connectionString: options.postgres })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${postgresSchema}" CASCADE`)
      await client.end()
    }
  }

  return {
    config,
    startEnv,
    databaseMeter,
    served,
    memoryTimeline,
    provide,
    noteMemory,
    stop,
    resultsDir,
    workDir,
    profileDir,
    /** The bare route as a contender (its runs also make the report's first row). */
    async bareContender () {
      const bare = await provide.bare()
      return { id: 'bare', label: 'bare GET /bare', pid: bare.pid, load: autocannonLoad(() => ({ url: `${bare.url}/bare`, connections: options.connections })) }
    },
    /** An autocannon contender against the auth server with one access token per connection. */
    async protectedContender (id, label, path, tokens, connections = options.connections) {
      const server = await provide.server()
      return { id, label, pid: server.pid, counts: 'protected', load: autocannonLoad(() => ({ url: `${server.url}${path}`, connections, setupClient: tokenPerConnection(tokens) })) }
    },
    /**
     * An autocannon contender against POST /auth/refresh whose connections follow token chains:
     * `makeChains(server)` builds fresh ones before each attempt, so no attempt starts from a token a
     * previous one rotated (by default plain chains, one new session each; lib/dpop.js's
     * dpopRefreshChains for bound ones). Each attempt's broken chains are added to `breaks` (error code
     * → count); its outcome carries the chains' spread.
     */
    async refreshContender (id, label, breaks, makeChains = async () => refreshChains(await freshRefreshTokens(options.connections))) {
      const server = await provide.server()
      let chains
      const load = autocannonLoad(() => ({ url: `${server.url}/auth/refresh`, connections: options.connections, setupClient: chains.setupClient }))
      return {
        id,
        label,
        pid: server.pid,
        counts: 'refreshes',
        prepare: async () => { chains = await makeChains(server) },
        load: async (seconds) => {
          const outcome = await load(seconds)
          tallyBreaks(breaks, chains.breaks)
          return { ...outcome, chains: chainSpread(chains.perChain) }
        }
      }
    },
    /** Rotates every protected session once: fresh access tokens for a scenario (they live 900 s). */
    async freshAccessTokens () {
      const { api } = await provide.server()
      const { sessions } = await provide.users()
      const rotated = await mapLimit(sessions, 8, (session) => api.refresh(session.refreshToken))
      rotated.forEach((tokens, index) => { sessions[index] = tokens })
      return rotated.map((tokens) => tokens.accessToken)
    },
    freshRefreshTokens
  }
}
