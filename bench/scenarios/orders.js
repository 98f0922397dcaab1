// GET /orders: the token check plus one Prisma read (the user's orders), against the bare route.
export default {
  needs: ['server', 'bare', 'users', 'orders'],
  async run (ctx) {
    const tokens = await ctx.freshAccessTokens()
    const runs = await ctx.alternate('GET /orders', [await ctx.bareContender(), await ctx.protectedContender('orders', 'GET /orders', '/orders', tokens)])
    const [bare, orders] = [ctx.best(runs.bare), ctx.best(runs.orders)]
    ctx.row('GET /orders (token check + one Prisma read)', orders, { chartLabel: 'GET /orders', comparisons: [{ against: 'bare', reference: bare }] })
    ctx.results.orders = { best: orders, bareBest: bare, vsBare: orders.reqPerSec / bare.reqPerSec, runs: runs.orders, bareRuns: runs.bare }
    const { perUser } = await ctx.provide.orders()
    ctx.methodNotes.push(`GET /orders: the same users and tokens; each user has ${perUser} orders.`)
  }
}
