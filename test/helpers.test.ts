// The shared assertions of test/helpers.ts can fail: each is shown to see what it looks for, so a
// test that passes through them means what it says.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { type Asserts, PASSWORD, assertError, countHashing, login, register, testApp } from './helpers.js'

/** Records assertion results instead of reporting them. */
function recorder () {
  const failures: string[] = []
  const check = (passed: boolean, message = '') => { if (!passed) failures.push(message) }
  const asserts: Asserts = {
    equal: (found, wanted, ...message) => check(found === wanted, message[0]),
    same: (found, wanted, ...message) => check(JSON.stringify(found) === JSON.stringify(wanted), message[0]),
    type: (found, wanted, ...message) => check(typeof found === wanted, message[0])
  }
  return { asserts, failures }
}

function response (statusCode: number, body: unknown, contentType = 'application/json; charset=utf-8'): LightMyRequestResponse {
  return { statusCode, headers: { 'content-type': contentType }, body: JSON.stringify(body) } as unknown as LightMyRequestResponse
}

const good = { statusCode: 401, code: 'AUTH_TOKEN_INVALID', error: 'Unauthorized', message: 'The access token is invalid' }

t.test('assertError accepts exactly the contract\'s error shape', async (t) => {
  const control = recorder()
  assertError(control.asserts, response(401, good), 401, 'AUTH_TOKEN_INVALID')
  t.same(control.failures, [], 'the contract\'s shape passes (control)')
  const withReason = recorder()
  assertError(withReason.asserts, response(401, { ...good, code: 'AUTH_REFRESH_INVALID', reason: 'logout' }), 401, 'AUTH_REFRESH_INVALID', '', { reason: 'logout' })
  t.same(withReason.failures, [], 'AUTH_REFRESH_INVALID with a session-end reason passes (control)')

  const cases: Array<[string, LightMyRequestResponse, number, string, { reason?: string }?]> = [
    ['another status', response(403, { ...good, statusCode: 403 }), 401, 'AUTH_TOKEN_INVALID'],
    ['another code', response(401, good), 401, 'AUTH_TOKEN_EXPIRED'],
    ['a body statusCode that differs', response(401, { ...good, statusCode: 400 }), 401, 'AUTH_TOKEN_INVALID'],
    ['a wrong reason phrase', response(401, { ...good, error: 'Bad Request' }), 401, 'AUTH_TOKEN_INVALID'],
    ['no message', response(401, { ...good, message: '' }), 401, 'AUTH_TOKEN_INVALID'],
    ['an extra member', response(401, { ...good, stack: 'at …' }), 401, 'AUTH_TOKEN_INVALID'],
    ['a missing member', response(401, { statusCode: 401, code: 'AUTH_TOKEN_INVALID', message: 'x' }), 401, 'AUTH_TOKEN_INVALID'],
    ['a reason on another code', response(401, { ...good, reason: 'logout' }), 401, 'AUTH_TOKEN_INVALID'],
    ['an unknown reason', response(401, { ...good, code: 'AUTH_REFRESH_INVALID', reason: 'because' }), 401, 'AUTH_REFRESH_INVALID'],
    ['another reason than expected', response(401, { ...good, code: 'AUTH_REFRESH_INVALID', reason: 'expired' }), 401, 'AUTH_REFRESH_INVALID', { reason: 'logout' }],
    ['a text body', response(401, good, 'text/plain'), 401, 'AUTH_TOKEN_INVALID']
  ]
  for (const [what, answer, statusCode, code, expected] of cases) {
    const checked = recorder()
    assertError(checked.asserts, answer, statusCode, code, what, expected)
    t.not(checked.failures.length, 0, `${what} fails`)
  }
})

t.test('countHashing sees every way a password reaches argon2', async (t) => {
  const app = await testApp(t)
  const hashing = countHashing(app)
  t.equal(hashing(), 0)
  const { username } = await register(app)
  t.equal(hashing(), 1, 'a registration hashes its password')
  await login(app, username, PASSWORD)
  t.equal(hashing(), 2, 'a login verifies it')
  const wrong = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password: 'not the right password' } })
  t.equal(wrong.statusCode, 401)
  t.equal(hashing(), 3, 'so does a login with a wrong password')
  const unknown = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'nobody-here', password: PASSWORD } })
  t.equal(unknown.statusCode, 401)
  t.ok(hashing() > 3, 'and an unknown user\'s login (checked against a dummy hash, for equal timing)')
})
