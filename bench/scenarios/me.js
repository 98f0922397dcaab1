// GET /auth/me: the server's token check (signature, claims, revocation list; no database), measured
// alternately with what a user might run instead: the bare route, and stock @fastify/jwt verify of
// the same tokens (bench/jwt-server.js, which checks no revocation).
import { autocannonLoad, tokenPerConnection } from '../lib/load.js'

export default {
  needs: ['server', 'bare', 'jwt', 'users'],
  async run (ctx) {
    const { options } = ctx
    const tokens = await ctx.freshAccessTokens()
    const jwt = await ctx.provide.jwt()
    const contenders = [
      await ctx.bareContender(),
      { id: 'jwt', label: 'stock @fastify/jwt GET /jwt', pid: jwt.pid, load: autocannonLoad(() => ({ url: `${jwt.url}/jwt`, connections: options.connections, setupClient: tokenPerConnection(tokens) })) },
      await ctx.protectedContender('me', 'GET /auth/me', '/auth/me', tokens)
    ]
    const runs = await ctx.alternate('GET /auth/me', contenders)
    const [bare, stock, me] = [ctx.best(runs.bare), ctx.best(runs.jwt), ctx.best(runs.me)]
    ctx.row('stock @fastify/jwt verify (bench/jwt-server.js)', stock, { chartLabel: 'stock @fastify/jwt', comparisons: [{ against: 'bare', reference: bare }] })
    ctx.row('GET /auth/me', me, { comparisons: [{ against: 'bare', reference: bare }, { against: '@fastify/jwt', reference: stock }] })
    ctx.results.me = { best: me, bareBest: bare, jwtBest: stock, vsBare: me.reqPerSec / bare.reqPerSec, vsJwt: me.reqPerSec / stock.reqPerSec, runs: runs.me, jwtRuns: runs.jwt, bareRuns: runs.bare }
    ctx.methodNotes.push(`GET /auth/me: ${options.connections} users, one session each, every connection with its own access token; the @fastify/jwt route verifies the same tokens (HS256, same secret) with the plugin's defaults, in a process of its own, alternating with the bare route and /auth/me.`)
  }
}
