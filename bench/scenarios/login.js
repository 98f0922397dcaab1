// POST /auth/login against the hash ceiling: PASSWORD_HASH_CONCURRENCY hashes at a time, each taking
// as long as one hash of the server's own PasswordHasher (its argon2id parameters) takes here.
import { loginRequest } from '../lib/accounts.js'
import { autocannonLoad } from '../lib/load.js'
import { passwordHasher } from '../lib/server-internals.js'

const LOGIN_CONNECTIONS = 16
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** Times `count` hashes one after another in this process, after one untimed hash. */
async function timeHashes (hasher, count) {
  await hasher.hash('warm-up password')
  const times = []
  for (let index = 0; index < count; index++) {
    const started = performance.now()
    await hasher.hash(`bench password ${index}`)
    times.push(performance.now() - started)
  }
  return times
}

export default {
  needs: ['server', 'users'],
  async run (ctx) {
    const { config, round } = ctx
    const server = await ctx.provide.server()
    const { usernames } = await ctx.provide.users()
    const hasher = await passwordHasher(1)
    // The parameters, as the hash the server's hasher wrote names them ($argon2id$v=19$m=…,t=…,p=…$…).
    const parameters = (await hasher.hash('parameters')).split('$').slice(1, 4).join(' ')
    // Hash time drifts with the machine's state, so it is sampled before and after the login runs.
    const hashTimes = await timeHashes(hasher, 7)
    ctx.log(`login: one hash (${parameters}) takes ${Math.min(...hashTimes).toFixed(1)} ms here (fastest of 7; 7 more after the runs)`)
    // autocannon stops at the end of a run, but the logins it left in flight stay queued for a hash:
    // one login of our own before each run comes back only once they have been served.
    const drain = () => server.api.login(usernames[0])
    const login = { id: 'login', label: 'POST /auth/login', pid: server.pid, prepare: drain, load: autocannonLoad(() => loginRequest(server.url, usernames[0], LOGIN_CONNECTIONS)) }
    const runs = await ctx.alternate('POST /auth/login', [login])
    hashTimes.push(...await timeHashes(hasher, 7))
    // Interference only ever adds time, so the fastest hash is the best estimate of what one costs here
    // (and the strictest ceiling); the median is kept in the JSON for comparison.
    const hashMs = Math.min(...hashTimes)
    const concurrency = config.passwordHashConcurrency
    const ceiling = (concurrency * 1000) / hashMs
    ctx.log(`login: ceiling ${concurrency} / ${hashMs.toFixed(1)} ms (fastest of 14 hashes; median ${median(hashTimes).toFixed(1)} ms) = ${ceiling.toFixed(1)} logins/s`)
    const top = ctx.best(runs.login)
    const reference = { reqPerSec: round(ceiling, 1), serverCpuPerRequestUs: round(hashMs * 1000, 0) }
    ctx.row('POST /auth/login', top, { comparisons: [{ against: 'hash ceiling', reference, unit: 'logins/s' }] })
    ctx.row(`hash ceiling (${concurrency} at a time, ${parameters})`, { connections: concurrency, reqPerSec: reference.reqPerSec, serverCpuPerRequestUs: reference.serverCpuPerRequestUs }, { comparisons: [], note: `${hashMs.toFixed(1)} ms a hash (fastest of 14)` })
    ctx.results.login = { vsCeiling: round(top.reqPerSec / ceiling, 4), parameters, hashMs: round(hashMs, 2), hashMedianMs: round(median(hashTimes), 2), hashTimesMs: hashTimes.map((time) => round(time, 1)), concurrency, ceiling: round(ceiling, 2), best: top, runs: runs.login }
    ctx.methodNotes.push(`Login ceiling: PASSWORD_HASH_CONCURRENCY (${concurrency}) ÷ the time of one hash by the server's own PasswordHasher (${parameters}, @node-rs/argon2): the fastest of 14 hashes timed one at a time in the load generator, 7 just before and 7 just after the login runs (interference only adds time, so the fastest is the best estimate, and gives the strictest ceiling); its "µs/req" is that one hash's time. Login runs use ${LOGIN_CONNECTIONS} connections, all logging in one user.`)
  }
}
