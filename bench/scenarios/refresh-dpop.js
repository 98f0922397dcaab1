// POST /auth/refresh with and without DPoP, alternately on the same server in the same run: one token
// chain per connection either way; the DPoP chains are sessions bound at login, and every refresh
// carries a new proof signed by the load generator (as a real client signs each request).
import { chainBreakLines } from '../lib/load.js'
import { boundSessions, dpopRefreshChains, proofCostUs } from '../lib/dpop.js'

export default {
  needs: ['server', 'users'],
  async run (ctx) {
    const { options } = ctx
    const server = await ctx.provide.server()
    const { usernames } = await ctx.provide.users()
    const breaks = { plain: {}, dpop: {} }

    const plain = await ctx.refreshContender('refresh-plain', 'POST /auth/refresh (no DPoP)', breaks.plain)
    const dpop = await ctx.refreshContender('refresh-dpop', 'POST /auth/refresh with DPoP', breaks.dpop,
      async () => dpopRefreshChains(server.url, await boundSessions(server.url, usernames.slice(0, options.connections))))
    const runs = await ctx.alternate('POST /auth/refresh with and without DPoP', [plain, dpop])
    const [without, withDpop] = [ctx.best(runs['refresh-plain']), ctx.best(runs['refresh-dpop'])]
    const signUs = await proofCostUs()
    ctx.row('POST /auth/refresh, no DPoP (beside the DPoP row)', without, { comparisons: [] })
    ctx.row('refresh with DPoP (a new ES256 proof per request)', withDpop, {
      chartLabel: 'refresh with DPoP',
      comparisons: [{ against: 'refresh without DPoP', reference: without, unit: 'rotations/s' }]
    })
    ctx.summary.push(`refresh with DPoP ÷ without: ${(withDpop.reqPerSec / without.reqPerSec).toFixed(3)} (${withDpop.reqPerSec} vs ${without.reqPerSec} req/s; server ${withDpop.serverCpuPerRequestUs} vs ${without.serverCpuPerRequestUs} µs CPU/req). Client side: signing one proof costs the load generator ${Math.round(signUs)} µs CPU (node:crypto ES256), not counted in the server's µs/req.`)
    ctx.summary.push(...chainBreakLines(breaks))
    ctx.results.refreshDpop = { best: withDpop, withoutBest: without, ratio: withDpop.reqPerSec / without.reqPerSec, proofSignUs: signUs, breaks, runs }
    ctx.methodNotes.push('Refresh with DPoP: the same chains as the refresh scenario, alternating in the same run between sessions logged in without a proof and sessions logged in with one (bound, a P-256 WebCrypto key per session); every DPoP refresh carries a fresh proof (new jti, current iat) signed in the load generator during the run, as a real client signs each request. The signing cost is the load generator\'s, reported apart.')
  }
}
