// POST /auth/refresh with one token chain per connection, against the stack's own ceiling: the
// server's SessionService.refresh (same store functions, statements and transaction) called in a
// loop in a process of its own with no HTTP (bench/refresh-ceiling.js), and against the bare route.
import { chainBreakLines, tallyBreaks } from '../lib/load.js'

export default {
  needs: ['server', 'bare', 'users', 'ceiling'],
  async run (ctx) {
    const { options } = ctx
    const ceilingProcess = await ctx.provide.ceiling()
    const breaks = { http: {}, ceiling: {} }

    let tokens
    const ceiling = {
      id: 'ceiling',
      label: 'refresh ceiling: SessionService.refresh, no HTTP',
      pid: ceilingProcess.pid,
      prepare: async () => { tokens = await ctx.freshRefreshTokens(options.connections) },
      load: async (seconds) => {
        const { outcome } = await ceilingProcess.request({ type: 'run', tokens, seconds })
        tallyBreaks(breaks.ceiling, outcome.breaks)
        return outcome
      }
    }
    const http = await ctx.refreshContender('refresh', 'POST /auth/refresh', breaks.http)
    const runs = await ctx.alternate('POST /auth/refresh', [await ctx.bareContender(), ceiling, http])
    const [bare, top, store] = [ctx.best(runs.bare), ctx.best(runs.refresh), ctx.best(runs.ceiling)]
    ctx.row('refresh ceiling (SessionService.refresh in-process, no HTTP)', store, { comparisons: [] })
    ctx.row('POST /auth/refresh (token chains)', top, {
      chartLabel: 'POST /auth/refresh',
      comparisons: [{ against: 'refresh ceiling', reference: store, unit: 'rotations/s' }, { against: 'bare', reference: bare }]
    })
    for (const [side, list] of [['HTTP', runs.refresh], ['ceiling', runs.ceiling]]) {
      const spread = ctx.best(list).chains
      if (spread !== undefined) ctx.summary.push(`refresh chains (${side}, best round): fewest ${spread.min}, median ${spread.median}, most ${spread.max} rotations of ${spread.chains} chains`)
    }
    ctx.summary.push(...chainBreakLines(breaks))
    ctx.results.refresh = { best: top, bareBest: bare, ceilingBest: store, vsCeiling: top.reqPerSec / store.reqPerSec, vsBare: top.reqPerSec / bare.reqPerSec, chainBreaks: breaks.http, ceilingBreaks: breaks.ceiling, runs: runs.refresh, ceilingRuns: runs.ceiling, bareRuns: runs.bare }
    ctx.methodNotes.push(`Refresh: every connection follows its own token chain (its own session, logged in just before the run) and presents the refresh token of its previous answer. The ceiling runs as many chains (${options.connections}) the same way through the server's own SessionService, built by its buildApp over a Prisma client on the same database, in a process of its own without HTTP; its "µs/req" is that process's CPU per rotation.`)
  }
}
