// helmet computes the API's security headers once (src/plugins/security-headers.ts), run through its
// public middleware on a real Node response. If helmet changes what that policy produces, this says so.
import t from 'tap'
import { helmetHeaders } from '../../src/plugins/security-headers.js'
import { testApp } from '../helpers.js'

const EXPECTED = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY'
}

t.test('the API policy is exactly these headers', async (t) => {
  t.same(helmetHeaders(), EXPECTED)
})

t.test('other options give other headers (the policy is what helmet makes of its options)', async (t) => {
  const headers = helmetHeaders({ contentSecurityPolicy: false, strictTransportSecurity: false, frameguard: false, xContentTypeOptions: false, xPoweredBy: false, referrerPolicy: { policy: 'no-referrer' } })
  t.equal(headers['referrer-policy'], 'no-referrer')
  t.notOk('content-security-policy' in headers)
})

t.test('every response carries them, errors included', async (t) => {
  const app = await testApp(t)
  for (const url of ['/health', '/no-such-route', '/auth/me']) {
    const response = await app.inject({ method: 'GET', url })
    for (const [name, value] of Object.entries(EXPECTED)) t.equal(response.headers[name], value, `${url}: ${name}`)
  }
})
