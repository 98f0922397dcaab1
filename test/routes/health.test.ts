// Liveness and readiness: public, cheap, and honest about the database.
import t from 'tap'
import { json, testApp, testDatabases } from '../helpers.js'

for (const database of testDatabases()) {
  t.test(`/health answers without credentials (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const response = await app.inject({ method: 'GET', url: '/health' })
    t.equal(response.statusCode, 200)
    t.match(String(response.headers['content-type']), /^application\/json/)
    t.equal(json(response).status, 'ok')
    // A broken credential on a public route is ignored, not refused.
    const withGarbage = await app.inject({ method: 'GET', url: '/health', headers: { authorization: 'Bearer garbage' } })
    t.equal(withGarbage.statusCode, 200)
  })

  t.test(`/ready is 200 while the database answers (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const response = await app.inject({ method: 'GET', url: '/ready' })
    t.equal(response.statusCode, 200)
    const body = json(response)
    t.equal(body.status, 'ready')
    t.equal(body.database, 'ok')
    t.notOk(JSON.stringify(body).includes(app.config.database.url), 'the database URL is not shown')
    const again = await app.inject({ method: 'GET', url: '/ready', headers: { authorization: 'Bearer garbage' } })
    t.equal(again.statusCode, 200)
  })

  t.test(`/ready is 503 in the error shape once the database is gone (${database})`, async (t) => {
    const app = await testApp(t, { database })
    t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200)
    const original = app.db.$queryRawUnsafe.bind(app.db)
    // Stands in for a database that stopped answering.
    app.db.$queryRawUnsafe = (async () => { throw new Error('connect ECONNREFUSED 10.0.0.1:5432 password=secret') }) as typeof original
    const response = await app.inject({ method: 'GET', url: '/ready' })
    t.equal(response.statusCode, 503)
    const body = json(response)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.equal(body.statusCode, 503)
    t.notMatch(response.body, /ECONNREFUSED|secret|10\.0\.0\.1/, 'no internals leak')
    app.db.$queryRawUnsafe = original
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'liveness does not depend on the database')
  })
}
