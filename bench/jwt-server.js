// What a user might build instead: a Fastify route behind stock @fastify/jwt, as its README shows it
// (register with the secret, `request.jwtVerify()` in an onRequest hook), HS256, logger off. It
// verifies the auth server's own access tokens (same secret, same claims and header), checks their
// signature and expiry, and nothing else: no revocation, no issuer or audience, no typ.
// The answer has the same JSON shape as GET /auth/me and the bare route.
import fastifyJwt from '@fastify/jwt'
import Fastify from 'fastify'

const port = Number(process.env.PORT ?? 0)
const app = Fastify({ logger: false })
await app.register(fastifyJwt, { secret: process.env.JWT_SECRET })
app.decorate('authenticate', async function authenticate (request, reply) {
  try {
    await request.jwtVerify()
  } catch (error) {
    reply.send(error)
  }
})
const User = { type: 'object', properties: { id: { type: 'string' }, username: { type: 'string' } } }

app.get('/health', async () => ({ status: 'ok' }))
app.get('/jwt', { onRequest: [app.authenticate], schema: { response: { 200: { type: 'object', properties: { user: User } } } } }, async (request) => {
  return { user: { id: request.user.sub, username: request.user.preferred_username } }
})

const address = await app.listen({ host: '127.0.0.1', port })
process.stdout.write(`listening ${address}\n`)
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => { app.close().then(() => process.exit(0)) })
