// GET /auth/me: the server's token check (signature, claims, revocation list; no database), measured
// alternately with what a user might run instead: the bare route, and stock @fastify/jwt verify of
// the same tokens (bench/jwt-server.js, which checks no revocation); and with the server's own
// unauthenticated GET /health, which pays the same hooks, headers, histogram and access-log line but
// no token check: /auth/me ÷ /health is what the token check itself costs in the server as shipped.
import { autocannonLoad, tokenPerConnection } from '../lib/load.js'

export default {
  needs: ['server', 'bare', 'jwt', 'users'],
  async run (ctx) {
    const { options } = ctx
    const tokens = await ctx.freshAccessTokens()
    const jwt = await ctx.provide.jwt()
    const server = await ctx.provide.server()
    const contenders = [
      await ctx.bareContender(),
      { id: 'jwt', label: 'stock @fastify/jwt GET /jwt', pid: jwt.pid, load: autocannonLoad(() => ({ url: `${jwt.url}/jwt`, connections: options.connections, setupClient: tokenPerConnection(tokens) })) },
      { id: 'health', label: 'GET /health', pid: server.pid, load: autocannonLoad(() => ({ url: `${server.url}/health`, connections: options.connections })) },
      await ctx.protectedContender('me', 'GET /auth/me', '/auth/me', tokens)
    ]
    const runs = await ctx.alternate('GET /auth/me', contenders)
    const [bare, stock, health, me] = [ctx.best(runs.bare), ctx.best(runs.jwt), ctx.best(runs.health), ctx.best(runs.me)]
    ctx.row('stock @fastify/jwt verify (bench/jwt-server.js)', stock, { chartLabel: 'stock @fastify/jwt', comparisons: [{ against: 'bare', reference: bare }] })
    ctx.row('GET /health (the server as shipped, no token)', health, { chartLabel: 'GET /health', comparisons: [{ against: 'bare', reference: bare }] })
    ctx.row('GET /auth/me', me, { comparisons: [{ against: 'bare', reference: bare }, { against: '@fastify/jwt', reference: stock }, { against: 'GET /health', reference: health }] })
    ctx.results.me = {
      best: me,
      bareBest: bare,
      jwtBest: stock,
      healthBest: health,
      vsBare: me.reqPerSec / bare.reqPerSec,
      vsJwt: me.reqPerSec / stock.reqPerSec,
      vsHealth: me.reqPerSec / health.reqPerSec,
      runs: runs.me,
      jwtRuns: runs.jwt,
      bareRuns: runs.bare,
      healthRuns: runs.health
    }
    ctx.methodNotes.push(
      `GET /auth/me: ${options.connections} users, one session each, every connection with its own access token; the @fastify/jwt route verifies the same tokens (HS256, same secret) with the plugin's defaults, in a process of its own, alternating with the bare route, /auth/me and GET /health.`,
      'GET /health is the same auth server as /auth/me, unauthenticated (no token sent, none checked): it pays the same Fastify hooks, security and CORS headers, request-duration histogram and access-log line. /auth/me ÷ /health is the cost of the token check (reading the header, the remembered verification, the revocation list, the principal) within the server as shipped; /auth/me ÷ bare adds everything the server does on every request.'
    )
  }
}
