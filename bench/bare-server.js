// The baseline: the cheapest useful Fastify route (logger off, a JSON body of the same shape as
// GET /auth/me). Protected scenarios are reported as a ratio to this route's req/s, measured in the
// same run on the same machine, so the goals do not depend on how fast the machine is.
import Fastify from 'fastify'

const port = Number(process.env.PORT ?? 0)
const app = Fastify({ logger: false })
const User = { type: 'object', properties: { id: { type: 'string' }, username: { type: 'string' } } }

app.get('/bare', { schema: { response: { 200: { type: 'object', properties: { user: User } } } } }, async () => {
  return { user: { id: 'x', username: 'y' } }
})

const address = await app.listen({ host: '127.0.0.1', port })
// The parent waits for this line before it sends traffic.
process.stdout.write(`listening ${address}\n`)
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => { app.close().then(() => process.exit(0)) })
