// Load generation with autocannon, in this process (the servers run in their own processes).
// measure() wraps one autocannon run and records what the table needs, plus the CPU time the server
// and this process used, which tells whether the server or the load generator was the bottleneck.
import autocannon from 'autocannon'
import { cpuMsBetween, cpuMsByPidOfCommand, cpuMsOf, machineBusyMs } from './processes.js'

export function fire (options) {
  return new Promise((resolve, reject) => {
    autocannon({ timeout: 10, ...options }, (error, result) => (error ? reject(error) : resolve(result)))
  })
}

function loadgenCpuMs () {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

/**
 * One measured run. `serverPid` is the process whose CPU use is recorded alongside.
 * req/s counts 2xx answers only (goodput); errors = socket errors + timeouts + non-2xx answers.
 */
/** The database server's processes, whose CPU is part of the system under test (PostgreSQL); null for none. */
let databaseCommand = null
export function setDatabaseCommand (command) { databaseCommand = command }
/** A snapshot of the database server's CPU use; `since(snapshot)` gives the ms used after it (0 with no database). */
export const databaseCpu = {
  snapshot: () => (databaseCommand === null ? null : cpuMsByPidOfCommand(databaseCommand)),
  since: (snapshot) => (snapshot === null ? 0 : cpuMsBetween(snapshot, cpuMsByPidOfCommand(databaseCommand)))
}

export async function measure (label, serverPid, options) {
  const serverCpuBefore = cpuMsOf(serverPid)
  const databaseBefore = databaseCpu.snapshot()
  const loadgenCpuBefore = loadgenCpuMs()
  const machineBefore = machineBusyMs()
  const result = await fire(options)
  const serverCpuMs = cpuMsOf(serverPid) - serverCpuBefore
  const loadgenCpu = loadgenCpuMs() - loadgenCpuBefore
  const databaseMs = databaseCpu.since(databaseBefore)
  const othersCpuMs = machineBusyMs() - machineBefore - serverCpuMs - loadgenCpu - databaseMs
  const seconds = result.duration
  return summarize(label, result, { serverCpuMs, loadgenCpuMs: loadgenCpu, othersCpuMs, databaseCpuMs: databaseCommand === null ? undefined : databaseMs, seconds })
}

export function summarize (label, result, { serverCpuMs, loadgenCpuMs, othersCpuMs, databaseCpuMs, seconds }) {
  const ok = result['2xx']
  return {
    label,
    connections: result.connections,
    seconds: round(seconds, 2),
    requests: ok,
    reqPerSec: round(ok / seconds, 1),
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    errors: result.errors + result.non2xx,
    socketErrors: result.errors,
    timeouts: result.timeouts,
    non2xx: result.non2xx,
    statusCodes: result.statusCodeStats,
    // CPU use as a share of one core (100 = one core busy for the whole run).
    serverCpu: serverCpuMs === undefined ? undefined : round((serverCpuMs / (seconds * 1000)) * 100, 0),
    // Server CPU time per answered request: unlike req/s, hardly moved by other processes on the machine.
    serverCpuPerRequestUs: serverCpuMs === undefined || ok === 0 ? undefined : round((serverCpuMs * 1000) / ok, 0),
    loadgenCpu: loadgenCpuMs === undefined ? undefined : round((loadgenCpuMs / (seconds * 1000)) * 100, 0),
    // The database server's processes (PostgreSQL), when it runs on this machine.
    databaseCpu: databaseCpuMs === undefined ? undefined : round((databaseCpuMs / (seconds * 1000)) * 100, 0),
    // Everything else on the machine (other processes, interrupts): the bench is only meaningful when this is small.
    othersCpu: othersCpuMs === undefined ? undefined : Math.max(0, round((othersCpuMs / (seconds * 1000)) * 100, 0))
  }
}

export function round (value, digits) {
  const scale = 10 ** digits
  return Math.round(value * scale) / scale
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
  function setupClient (client) {
    if (next >= refreshTokens.length) throw new Error(`refresh chains: more connections than sessions (${refreshTokens.length})`)
    const chain = { token: refreshTokens[next++] }
    client.setRequests([{
      method: 'POST',
      path: '/auth/refresh',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({ ...request, body: JSON.stringify({ refreshToken: chain.token }) }),
      onResponse: (status, body) => {
        if (status === 200) {
          chain.token = JSON.parse(body).refreshToken
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
  return { setupClient, breaks, get rotations () { return rotations } }
}
