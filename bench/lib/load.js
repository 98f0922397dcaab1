// Load generation in this process (the servers run in their own processes), and the CPU accounting
// around every measured run: the process under test, this process (the load generator), the database
// server (PostgreSQL on this machine) and everything else, which tells whether a run was disturbed.
import autocannon from 'autocannon'
import { cpuMsBetween, cpuMsByPidOfCommand, cpuMsOf, machineBusyMs } from './processes.js'

export function fire (options) {
  return new Promise((resolve, reject) => {
    autocannon({ timeout: 10, ...options }, (error, result) => (error ? reject(error) : resolve(result)))
  })
}

/**
 * An autocannon result as an outcome: what every load returns to measureCpu. req/s counts 2xx
 * answers only (goodput); errors = socket errors + timeouts + non-2xx answers.
 */
export function autocannonOutcome (result) {
  return {
    connections: result.connections,
    seconds: result.duration,
    requests: result['2xx'],
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors + result.non2xx,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes: result.statusCodeStats
  }
}

/** A load function for measureCpu: one autocannon run of `seconds` with these options. */
export const autocannonLoad = (makeOptions) => async (seconds) => autocannonOutcome(await fire({ duration: seconds, ...makeOptions() }))

function loadgenCpuMs () {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/**
 * The CPU of the database server's processes (command name, e.g. 'postgres'; null for none): a
 * snapshot, and the ms used after it.
 */
export function databaseCpuMeter (command) {
  return {
    snapshot: () => (command === null ? null : cpuMsByPidOfCommand(command)),
    since: (snapshot) => (snapshot === null ? undefined : cpuMsBetween(snapshot, cpuMsByPidOfCommand(command)))
  }
}

/**
 * Runs `load()` and charges the CPU used meanwhile. `load` resolves with an outcome
 * ({ connections, seconds, requests, p50, p99, max, errors, … }); the run adds req/s and the CPU shares.
 */
export async function measureCpu (pid, database, load) {
  const serverBefore = cpuMsOf(pid)
  const databaseBefore = database.snapshot()
  const loadgenBefore = loadgenCpuMs()
  const machineBefore = machineBusyMs()
  const outcome = await load()
  const serverCpuMs = cpuMsOf(pid) - serverBefore
  const loadgen = loadgenCpuMs() - loadgenBefore
  const databaseMs = database.since(databaseBefore)
  const othersCpuMs = machineBusyMs() - machineBefore - serverCpuMs - loadgen - (databaseMs ?? 0)
  return summarize(outcome, { serverCpuMs, loadgenCpuMs: loadgen, othersCpuMs, databaseCpuMs: databaseMs })
}

export function summarize (outcome, { serverCpuMs, loadgenCpuMs, othersCpuMs, databaseCpuMs } = {}) {
  const { seconds, requests } = outcome
  const share = (ms) => (ms === undefined ? undefined : round((ms / (seconds * 1000)) * 100, 0))
  return {
    ...outcome,
    seconds: round(seconds, 2),
    reqPerSec: round(requests / seconds, 1),
    // CPU use as a share of one core (100 = one core busy for the whole run).
    serverCpu: share(serverCpuMs),
    // CPU time of the process under test per answered request: unlike req/s, hardly moved by other
    // processes on the machine.
    serverCpuPerRequestUs: serverCpuMs === undefined || requests === 0 ? undefined : round((serverCpuMs * 1000) / requests, 0),
    loadgenCpu: share(loadgenCpuMs),
    // The database server's processes (PostgreSQL), when it runs on this machine.
    databaseCpu: share(databaseCpuMs),
    // Everything else on the machine (other processes, interrupts): the bench is only meaningful when this is small.
    othersCpu: othersCpuMs === undefined ? undefined : Math.max(0, share(othersCpuMs))
  }
}

export function round (value, digits) {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
}

/** The p-th percentile of ascending `sorted` values (NaN for none). */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** Gives each autocannon connection its own access token (round-robin over `accessTokens`). */
export function tokenPerConnection (accessTokens) {
  let next = 0
  return (client) => {
    client.setHeaders({ authorization: `Bearer ${accessTokens[next++ % accessTokens.length]}` })
  }
}

/**
 * Each autocannon connection follows its own refresh-token chain: it starts from one of `refreshTokens`
 * (one session each, never shared) and always presents the token from its previous 200 answer.
 * Non-200 answers are tallied by error code in `breaks`; the connection keeps its last good token.
 */
export function refreshChains (refreshTokens) {
  let next = 0
  const breaks = {}
  let rotations = 0
  const chains = []
  function setupClient (client) {
    if (next >= refreshTokens.length) throw new Error(`refresh chains: more connections than sessions (${refreshTokens.length})`)
    const chain = { token: refreshTokens[next++], rotations: 0 }
    chains.push(chain)
    client.setRequests([{
      method: 'POST',
      path: '/auth/refresh',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, body: JSON.stringify({ refreshToken: chain.token }) }),
      onResponse: (status, body) => {
        if (status === 200) {
          chain.token = JSON.parse(body).refreshToken
          chain.rotations++
          rotations++
          return
        }
        let code = String(status)
        try {
          code = `${status} ${JSON.parse(body).code}`
        } catch {}
        breaks[code] = (breaks[code] ?? 0) + 1
      }
    }])
  }
  return {
    setupClient,
    breaks,
    get rotations () { return rotations },
    /** Rotations of each chain, in the order the connections started. */
    get perChain () { return chains.map((chain) => chain.rotations) }
  }
}

/** How evenly the chains were served: their count and the fewest, median and most rotations of one. */
export function chainSpread (perChain) {
  const sorted = [...perChain].sort((a, b) => a - b)
  return { chains: sorted.length, min: sorted[0], median: sorted[Math.floor(sorted.length / 2)], max: sorted[sorted.length - 1], perChain }
}

/** Adds the per-error-code counts of `from` to `into`. */
export function tallyBreaks (into, from) {
  for (const [code, count] of Object.entries(from)) into[code] = (into[code] ?? 0) + count
}

/** The report's lines for broken chains: one per side (`breaks`: side → error code → count) that had any. */
export const chainBreakLines = (breaks) => Object.entries(breaks)
  .filter(([, codes]) => Object.keys(codes).length > 0)
  .map(([side, codes]) => `refresh chains broken (${side}, all attempts): ${JSON.stringify(codes)}`)
