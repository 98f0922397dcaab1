// Every 400 says in one sentence what is wrong, as the caller wrote it, and never echoes what was
// sent (issue 10, item 7). Route by route, through each route's schema.
import t from 'tap'
import type { InjectOptions } from 'fastify'
import { PASSWORD, bearer, json, signedIn, testApp } from '../helpers.js'

const TOKEN_LIKE = 'eyJhbGciOiJIUzI1NiJ9.' + 'x'.repeat(600)
const SECRET_PASSWORD = 'hunter2-secret-' + 'p'.repeat(1100)

t.test('each route\'s 400 names the field and what it must be, in one sentence', async (t) => {
  const app = await testApp(t)
  const { tokens } = await signedIn(app)
  const auth = bearer(tokens.accessToken)
  const cases: Array<[string, InjectOptions, string]> = [
    ['refresh with an access token in the body', { method: 'POST', url: '/auth/refresh', payload: { refreshToken: TOKEN_LIKE } }, 'refreshToken must be a refresh token string of at most 512 characters'],
    ['refresh with a number', { method: 'POST', url: '/auth/refresh', payload: { refreshToken: 42 } }, 'refreshToken must be a refresh token string of at most 512 characters'],
    ['refresh with an empty string', { method: 'POST', url: '/auth/refresh', payload: { refreshToken: '' } }, 'refreshToken must be a refresh token string of at most 512 characters'],
    ['refresh with a list as the body', { method: 'POST', url: '/auth/refresh', payload: '[1]', headers: { 'content-type': 'application/json' } }, 'The request body must be a JSON object or empty (null)'],
    ['logout with a number token', { method: 'POST', url: '/auth/logout', payload: { refreshToken: 1 } }, 'refreshToken must be a refresh token string of at most 512 characters'],
    ['login without a password', { method: 'POST', url: '/auth/login', payload: { username: 'alice' } }, 'password is required'],
    ['login without a body', { method: 'POST', url: '/auth/login' }, 'The request body must be a JSON object with username and password'],
    ['login with a long password', { method: 'POST', url: '/auth/login', payload: { username: 'alice', password: SECRET_PASSWORD } }, 'password must be a password string of 1 to 1024 characters'],
    ['login with an object as username', { method: 'POST', url: '/auth/login', payload: { username: { $ne: null }, password: PASSWORD } }, 'username must be a username string of 1 to 256 characters'],
    ['login with an unknown client', { method: 'POST', url: '/auth/login', payload: { username: 'alice', password: PASSWORD, client: 'tablet' } }, 'client must be "mobile" or "web"'],
    ['register without a username', { method: 'POST', url: '/auth/register', payload: { password: PASSWORD } }, 'username is required'],
    ['register with a number as password', { method: 'POST', url: '/auth/register', payload: { username: 'someone', password: 12345678 } }, 'password must be a password string of 1 to 1024 characters'],
    ['password change without the new password', { method: 'POST', url: '/auth/password', headers: auth, payload: { currentPassword: PASSWORD } }, 'newPassword is required'],
    ['password change with an empty current password', { method: 'POST', url: '/auth/password', headers: auth, payload: { currentPassword: '', newPassword: 'another good password' } }, 'currentPassword must be a password string of 1 to 1024 characters'],
    ['session deletion with a long id', { method: 'DELETE', url: `/auth/sessions/${'a'.repeat(150)}`, headers: auth }, 'id must be a non-empty string of at most 128 characters'],
    ['order without quantity', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'book' } }, 'quantity is required'],
    ['order with a fractional quantity', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'book', quantity: 1.5 } }, 'quantity must be a whole number from 1 to 1000000'],
    ['order with a zero quantity', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'book', quantity: 0 } }, 'quantity must be a whole number from 1 to 1000000'],
    ['order with a quantity as text', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'book', quantity: '2' } }, 'quantity must be a whole number from 1 to 1000000'],
    ['order with an empty item', { method: 'POST', url: '/orders', headers: auth, payload: { item: '', quantity: 1 } }, 'item must be a non-empty string of at most 200 characters'],
    ['order with a long item', { method: 'POST', url: '/orders', headers: auth, payload: { item: 'b'.repeat(201), quantity: 1 } }, 'item must be a non-empty string of at most 200 characters'],
    ['order update with a list', { method: 'PUT', url: '/orders/some-id', headers: { ...auth, 'content-type': 'application/json' }, payload: '[]' }, 'The request body must be a JSON object with item and quantity'],
    ['malformed JSON with a password in it', { method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload: `{"username":"alice","password":"${SECRET_PASSWORD.slice(0, 40)}"` }, "Body is not valid JSON but content-type is set to 'application/json'"]
  ]
  for (const [what, request, message] of cases) {
    const response = await app.inject(request)
    t.equal(response.statusCode, 400, `${what}: 400`)
    const body = json(response)
    t.equal(body.code, 'VALIDATION_ERROR', `${what}: VALIDATION_ERROR`)
    t.equal(body.message, message, what)
    t.notMatch(body.message, /\. [A-Z]|, body must|must match/, `${what}: one sentence, no list of branches`)
    for (const secret of [TOKEN_LIKE.slice(0, 30), 'hunter2', '$ne', 'tablet']) t.notOk(response.body.includes(secret), `${what}: does not echo ${secret}`)
  }
})

t.test('messages of the checks outside the schemas are single sentences too', async (t) => {
  const app = await testApp(t)
  const cases: Array<[InjectOptions, RegExp]> = [
    [{ method: 'POST', url: '/auth/refresh', payload: { refreshToken: 'not-a-token' } }, /^refreshToken is not a well-formed refresh token$/],
    [{ method: 'POST', url: '/auth/register', payload: { username: 'a b', password: PASSWORD } }, /^username must /],
    [{ method: 'POST', url: '/orders', headers: { authorization: 'Bearer x', 'content-type': 'application/json' }, payload: '{"item":"\\ud800","quantity":1}' }, /.*/]
  ]
  for (const [request, pattern] of cases) {
    const response = await app.inject(request)
    t.ok(response.statusCode >= 400 && response.statusCode < 500, `${request.url}: a 4xx`)
    t.match(json(response).message, pattern)
    t.notMatch(json(response).message, /\. [A-Z]/, 'one sentence')
  }
})

t.test('a route added later gets the same messages and the same NUL/surrogate refusal, even with its own error handler', async (t) => {
  const app = await testApp(t)
  await app.register(async (child) => {
    child.setErrorHandler((error: { message: string, code?: string }, _request, reply) => reply.status(400).send({ own: true, code: error.code, message: error.message }))
    child.post('/test-only/notes', {
      config: { public: true },
      schema: { body: { type: 'object', properties: { note: { type: 'string', minLength: 1, maxLength: 5 } }, required: ['note'] } }
    }, async () => ({ ok: true }))
  })
  const long = await app.inject({ method: 'POST', url: '/test-only/notes', payload: { note: 'far too long' } })
  t.same(json(long), { own: true, code: 'VALIDATION_ERROR', message: 'note must be a non-empty string of at most 5 characters' })
  const nul = await app.inject({ method: 'POST', url: '/test-only/notes', payload: { note: 'a\u0000' } })
  t.same(json(nul), { own: true, code: 'VALIDATION_ERROR', message: 'note must not contain the NUL character (U+0000)' })
  t.equal((await app.inject({ method: 'POST', url: '/test-only/notes', payload: { note: 'fine' } })).statusCode, 200, 'control')
})
