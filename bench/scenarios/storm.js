// GET /auth/me at a steady rate, alone and beside a login storm: how much the logins' work (hashing
// off the event loop, Prisma and JWT on it) delays the protected requests of everyone else.
import { loginRequest } from '../lib/accounts.js'
import { autocannonLoad } from '../lib/load.js'
import { pacedLoad } from '../lib/paced.js'

const STORM_CONNECTIONS = 10
const LOGIN_CONNECTIONS = 16
// The protected load beside the login storm runs at this share of /auth/me's measured capacity. On two
// cores the storm's hashing takes one core, so the event loop and the load generator share the
// other: at a larger share the run measures that core's saturation rather than the storm's effect.
const STORM_PROTECTED_SHARE = 0.1

export default {
  needs: ['server', 'users'],
  async run (ctx) {
    const { options, round } = ctx
    const server = await ctx.provide.server()
    const { usernames } = await ctx.provide.users()
    const tokens = await ctx.freshAccessTokens()
    // /auth/me's capacity: as measured by the me scenario in this run, or else by a short run of its own.
    let capacity = ctx.results.me?.best.reqPerSec
    if (capacity === undefined) {
      ctx.log('storm: measuring GET /auth/me\'s capacity first (a warm-up-long run)')
      capacity = (await ctx.measure(await ctx.protectedContender('me', 'GET /auth/me (capacity)', '/auth/me', tokens), { warmup: true })).reqPerSec
    }
    const rate = Math.max(100, Math.round(capacity * STORM_PROTECTED_SHARE))
    const paced = (seconds) => pacedLoad({ url: `${server.url}/auth/me`, rate, seconds, connections: STORM_CONNECTIONS, accessTokens: tokens })
    const logins = autocannonLoad(() => loginRequest(server.url, usernames[0], LOGIN_CONNECTIONS))
    const storms = []
    // The logins a storm left in flight stay queued for a hash after it ends: one login of our own
    // before each run comes back only once they have been served.
    const drain = () => server.api.login(usernames[0])
    const alone = { id: 'alone', label: `GET /auth/me @${rate}/s alone`, pid: server.pid, counts: 'protected', prepare: drain, load: paced }
    const during = {
      id: 'during',
      label: `GET /auth/me @${rate}/s during login storm`,
      pid: server.pid,
      counts: 'protected',
      prepare: drain,
      load: async (seconds) => {
        const [outcome, storm] = await Promise.all([paced(seconds), logins(seconds)])
        return { ...outcome, storm }
      }
    }
    ctx.log(`storm: GET /auth/me at a steady ${rate} req/s, alone and beside a login storm (${LOGIN_CONNECTIONS} conns)`)
    const runs = await ctx.alternate('storm', [alone, during])
    runs.during.forEach((run, index) => {
      const logins = { label: 'POST /auth/login (the storm)', round: index + 1, ...ctx.summarize(run.storm) }
      ctx.recordRun(logins)
      storms.push(logins)
    })
    // Each side's best (lowest) p99, so one unlucky scheduling hiccup does not decide the row.
    const lowestP99 = (list) => list.reduce((a, b) => (b.p99 < a.p99 ? b : a))
    const [quiet, loud] = [lowestP99(runs.alone), lowestP99(runs.during)]
    const ratio = loud.p99 / quiet.p99
    ctx.row(`GET /auth/me @${rate}/s alone`, quiet, { comparisons: [], note: 'steady rate, open loop' })
    ctx.row(`GET /auth/me @${rate}/s + login storm`, loud, {
      comparisons: [{ against: 'alone', reference: quiet, ratio, text: `p99 ${ratio.toFixed(2)} × alone`, chart: false }],
      bar: { axis: 'linear', label: 'p99 during login storm ÷ alone (dashed: 1)', value: ratio, reference: 1, valueText: `${ratio.toFixed(2)} × (${loud.p99} vs ${quiet.p99} ms; ${loud.serverCpuPerRequestUs ?? '-'} vs ${quiet.serverCpuPerRequestUs ?? '-'} µs/req incl. logins)` }
    })
    ctx.results.storm = { rate, p99Ratio: round(ratio, 4), aloneP99: quiet.p99, stormP99: loud.p99, alone: runs.alone, during: runs.during.map(({ storm, ...run }) => run), logins: storms }
    ctx.methodNotes.push(`Login storm: GET /auth/me at a steady rate of ${Math.round(STORM_PROTECTED_SHARE * 100)}% of its measured capacity (open loop: evenly spaced requests over up to ${STORM_CONNECTIONS} keep-alive sockets, latency timed to the microsecond, bench/lib/paced.js), alone and beside a ${LOGIN_CONNECTIONS}-connection autocannon login storm, alternating for ${options.rounds} rounds; the lowest p99 of each side is compared. The µs/req of the storm rows counts the logins' CPU too.`)
  }
}
