// /orders: the protected demo resource. Each user sees and changes only their own orders; another
// user's order is indistinguishable from a missing one (404).
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { assertError, bearer, json, signedIn, testApp, testDatabases } from '../helpers.js'

const ORDER_KEYS = ['createdAt', 'id', 'item', 'quantity', 'updatedAt']

function orderClient (app: FastifyInstance, accessToken: string) {
  const headers = bearer(accessToken)
  return {
    list: () => app.inject({ method: 'GET', url: '/orders', headers }),
    create: (payload: unknown) => app.inject({ method: 'POST', url: '/orders', headers, payload: payload as Record<string, unknown> }),
    get: (id: string) => app.inject({ method: 'GET', url: `/orders/${encodeURIComponent(id)}`, headers }),
    put: (id: string, payload: unknown) => app.inject({ method: 'PUT', url: `/orders/${encodeURIComponent(id)}`, headers, payload: payload as Record<string, unknown> }),
    delete: (id: string) => app.inject({ method: 'DELETE', url: `/orders/${encodeURIComponent(id)}`, headers })
  }
}

for (const database of testDatabases()) {
  t.test(`create, list, get, update and delete an order (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const orders = orderClient(app, tokens.accessToken)

    t.same(json(await orders.list()), { orders: [] })

    const created = await orders.create({ item: 'fountain pen', quantity: 2 })
    t.equal(created.statusCode, 201)
    const order = json(created).order
    t.same(Object.keys(json(created)), ['order'])
    t.same(Object.keys(order).sort(), ORDER_KEYS, 'no owner or other internals in the response')
    t.type(order.id, 'string')
    t.ok(order.id.length > 0)
    t.equal(order.item, 'fountain pen')
    t.equal(order.quantity, 2)
    t.ok(!Number.isNaN(Date.parse(order.createdAt)), 'createdAt is a timestamp')
    t.ok(!Number.isNaN(Date.parse(order.updatedAt)), 'updatedAt is a timestamp')

    const second = json(await orders.create({ item: 'ink', quantity: 10 })).order
    t.not(second.id, order.id)

    const list = await orders.list()
    t.equal(list.statusCode, 200)
    const listed = json(list).orders as Array<Record<string, unknown>>
    t.same(listed.map((entry) => entry.id).sort(), [order.id, second.id].sort())
    t.same(listed.find((entry) => entry.id === order.id), order)
    for (const entry of listed) t.same(Object.keys(entry).sort(), ORDER_KEYS)

    const fetched = await orders.get(order.id)
    t.equal(fetched.statusCode, 200)
    t.same(json(fetched), { order })

    const updated = await orders.put(order.id, { item: 'fountain pen, blue', quantity: 3 })
    t.equal(updated.statusCode, 200)
    const changed = json(updated).order
    t.equal(changed.id, order.id)
    t.equal(changed.item, 'fountain pen, blue')
    t.equal(changed.quantity, 3)
    t.equal(changed.createdAt, order.createdAt)
    t.ok(Date.parse(changed.updatedAt) >= Date.parse(order.updatedAt), 'updatedAt does not go back')
    t.same(json(await orders.get(order.id)).order, changed, 'the update was stored')

    const deleted = await orders.delete(order.id)
    t.equal(deleted.statusCode, 204)
    t.equal(deleted.body, '')
    assertError(t, await orders.get(order.id), 404, 'NOT_FOUND')
    assertError(t, await orders.delete(order.id), 404, 'NOT_FOUND')
    assertError(t, await orders.put(order.id, { item: 'ghost', quantity: 1 }), 404, 'NOT_FOUND')
    t.same(json(await orders.list()).orders.map((entry: { id: string }) => entry.id), [second.id], 'only the other order is left; PUT did not recreate it')
  })

  t.test(`invalid order input is 400 VALIDATION_ERROR and changes nothing (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const orders = orderClient(app, tokens.accessToken)
    const original = json(await orders.create({ item: 'pen', quantity: 1 })).order
    const invalid: unknown[] = [
      {},
      { item: 'pen' },
      { quantity: 1 },
      { item: '', quantity: 1 },
      { item: 'x'.repeat(201), quantity: 1 },
      { item: 42, quantity: 1 },
      { item: null, quantity: 1 },
      { item: ['pen'], quantity: 1 },
      { item: 'pen', quantity: 0 },
      { item: 'pen', quantity: -3 },
      { item: 'pen', quantity: 1.5 },
      { item: 'pen', quantity: '2' },
      { item: 'pen', quantity: null },
      { item: 'pen', quantity: 1_000_001 },
      { item: 'pen', quantity: true }
    ]
    for (const payload of invalid) {
      assertError(t, await orders.create(payload), 400, 'VALIDATION_ERROR')
      assertError(t, await orders.put(original.id, payload), 400, 'VALIDATION_ERROR')
    }
    const listed = json(await orders.list()).orders
    t.equal(listed.length, 1, 'no invalid order was stored')
    t.same(listed[0], original, 'the existing order is unchanged')
    // The bounds themselves are accepted.
    t.equal((await orders.create({ item: 'x'.repeat(200), quantity: 1_000_000 })).statusCode, 201)
    t.equal((await orders.create({ item: 'y', quantity: 1 })).statusCode, 201)
  })

  t.test(`each user sees and changes only their own orders (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const alice = await signedIn(app)
    const bob = await signedIn(app)
    const aliceOrders = orderClient(app, alice.tokens.accessToken)
    const bobOrders = orderClient(app, bob.tokens.accessToken)
    const aliceOrder = json(await aliceOrders.create({ item: 'alice pen', quantity: 1 })).order
    const bobOrder = json(await bobOrders.create({ item: 'bob ink', quantity: 5 })).order

    t.same(json(await aliceOrders.list()).orders.map((order: { id: string }) => order.id), [aliceOrder.id])
    t.same(json(await bobOrders.list()).orders.map((order: { id: string }) => order.id), [bobOrder.id])

    // Another user's order is a 404, exactly like a missing one.
    const missing = await bobOrders.get('00000000-0000-4000-8000-000000000000')
    assertError(t, missing, 404, 'NOT_FOUND')
    const foreignGet = await bobOrders.get(aliceOrder.id)
    assertError(t, foreignGet, 404, 'NOT_FOUND')
    t.equal(json(foreignGet).message, json(missing).message, 'the same answer as for a missing order')
    assertError(t, await bobOrders.put(aliceOrder.id, { item: 'stolen', quantity: 99 }), 404, 'NOT_FOUND')
    assertError(t, await bobOrders.delete(aliceOrder.id), 404, 'NOT_FOUND')

    // Alice's order is unchanged and still hers; Bob's list did not grow.
    t.same(json(await aliceOrders.get(aliceOrder.id)).order, aliceOrder)
    t.same(json(await bobOrders.list()).orders.map((order: { id: string }) => order.id), [bobOrder.id])
    // And the other way round.
    assertError(t, await aliceOrders.get(bobOrder.id), 404, 'NOT_FOUND')
    assertError(t, await aliceOrders.delete(bobOrder.id), 404, 'NOT_FOUND')
    t.same(json(await bobOrders.get(bobOrder.id)).order, bobOrder)
  })

  t.test(`orders need a valid access token (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { tokens } = await signedIn(app)
    const order = json(await orderClient(app, tokens.accessToken).create({ item: 'pen', quantity: 1 })).order
    const requests = [
      { method: 'GET', url: '/orders' },
      { method: 'POST', url: '/orders', payload: { item: 'pen', quantity: 1 } },
      { method: 'GET', url: `/orders/${order.id}` },
      { method: 'PUT', url: `/orders/${order.id}`, payload: { item: 'changed', quantity: 2 } },
      { method: 'DELETE', url: `/orders/${order.id}` }
    ] as const
    for (const request of requests) {
      const anonymous = await app.inject({ ...request })
      assertError(t, anonymous, 401, 'AUTH_TOKEN_MISSING')
      t.equal(anonymous.headers['www-authenticate'], 'Bearer')
      const forged = await app.inject({ ...request, headers: { authorization: 'Bearer not.a.token' } })
      assertError(t, forged, 401, 'AUTH_TOKEN_INVALID')
    }
    // After logout the token no longer opens the orders.
    t.equal((await app.inject({ method: 'POST', url: '/auth/logout', headers: bearer(tokens.accessToken) })).statusCode, 204)
    for (const request of requests) {
      assertError(t, await app.inject({ ...request, headers: bearer(tokens.accessToken) }), 401, 'AUTH_TOKEN_REVOKED')
    }
    // Nothing was changed by the refused requests.
    const again = await signedIn(app)
    t.same(json(await orderClient(app, again.tokens.accessToken).list()).orders, [], 'another user sees none of it')
  })

  t.test(`an access token whose user was deleted from the database gets a 401, never a 5xx (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { user, tokens } = await signedIn(app)
    await app.db.user.delete({ where: { id: user.id } })
    const response = await orderClient(app, tokens.accessToken).create({ item: 'pen', quantity: 1 })
    t.ok(response.statusCode < 500, `not a 5xx (got ${response.statusCode}: ${response.body.slice(0, 200)})`)
    t.equal(response.statusCode, 401)
    const body = json(response)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.equal(body.statusCode, 401)
    // Which layer refuses it (the revocation list up front, or the failed insert) is not this test's business.
    t.ok(['AUTH_TOKEN_REVOKED', 'AUTH_TOKEN_INVALID'].includes(body.code), `code ${body.code}`)
    t.equal(response.headers['www-authenticate'], 'Bearer error="invalid_token"')
    t.equal(await app.db.order.count(), 0, 'no order was created')
  })
}
