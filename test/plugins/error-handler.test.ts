// The one error handler reads what each error declares (src/errors.ts): its status, OAuth error and
// challenge. A route answers in OAuth shape by its config alone, and an error declared here, as a
// new endpoint's would be, needs no handler of its own. Built on a bare Fastify with only the
// handler, so nothing else can produce the answers.
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import { InvalidClient, RefreshInvalid, TokenInvalid, TokenMissing, ValidationFailed, declareError } from '../../src/errors.js'
import errorHandler from '../../src/plugins/error-handler.js'

const DpopInvalid = declareError('AUTH_DPOP_INVALID', '%s', 401, {
  oauth: { error: 'invalid_dpop_proof', statusCode: 400 },
  challenge: { scheme: 'DPoP', error: 'invalid_dpop_proof' }
})
/** Its code has the token errors' prefix but it declares no challenge: the prefix decides nothing. */
const TokenLookalike = declareError('AUTH_TOKEN_LOOKALIKE', 'not a token error', 401)

async function appThrowing (t: Test, thrown: () => Error, config: Record<string, unknown>, principal: object | null = null) {
  const app = Fastify({ logger: false })
  await app.register(errorHandler)
  app.decorateRequest('principal', null)
  app.addHook('onRequest', async (request) => { (request as { principal: unknown }).principal = principal })
  app.get('/', { config }, async () => { throw thrown() })
  t.teardown(() => app.close())
  return app.inject({ method: 'GET', url: '/' })
}

t.test('contract shape: status, code and the declared challenge', async (t) => {
  const missing = await appThrowing(t, () => new TokenMissing(), { public: true })
  t.equal(missing.statusCode, 401)
  t.same(missing.json(), { statusCode: 401, code: 'AUTH_TOKEN_MISSING', error: 'Unauthorized', message: 'An access token is required' })
  t.equal(missing.headers['www-authenticate'], 'Bearer', 'no credentials: a bare challenge')

  const invalid = await appThrowing(t, () => new TokenInvalid(), { public: true })
  t.equal(invalid.headers['www-authenticate'], 'Bearer error="invalid_token"', 'declared: challenges on a public route too')

  const lookalike = await appThrowing(t, () => new TokenLookalike(), { public: true })
  t.equal(lookalike.statusCode, 401)
  t.equal(lookalike.headers['www-authenticate'], undefined, 'no declared challenge, public route: none, whatever the code says')

  const onProtected = await appThrowing(t, () => new TokenLookalike(), {}, { userId: 'u' })
  t.equal(onProtected.headers['www-authenticate'], 'Bearer error="invalid_token"', 'a protected route\'s 401 with credentials: invalid_token')
  const anonymous = await appThrowing(t, () => new TokenLookalike(), {})
  t.equal(anonymous.headers['www-authenticate'], 'Bearer', 'a protected route\'s 401 without credentials: bare')

  const dpop = await appThrowing(t, () => Object.assign(new DpopInvalid('the proof is stale'), { headers: { 'dpop-nonce': 'n-1' } }), { public: true })
  t.equal(dpop.statusCode, 401)
  t.equal(dpop.json().code, 'AUTH_DPOP_INVALID')
  t.equal(dpop.headers['www-authenticate'], 'DPoP error="invalid_dpop_proof", error_description="the proof is stale", algs="ES256 ES384 EdDSA"',
    'a challenge with its own scheme; a DPoP one says what was wrong and names the accepted algorithms (RFC 9449 §7.1)')
  t.equal(dpop.headers['dpop-nonce'], 'n-1', 'headers the error instance carries')
  t.equal(dpop.headers['cache-control'], undefined, 'contract shape: no OAuth cache headers')

  const nonce = await appThrowing(t, () => Object.assign(new DpopInvalid('need a nonce'), {
    challenge: { scheme: 'DPoP', error: 'use_dpop_nonce', description: 'use the "DPoP-Nonce"', params: { algs: 'ES256 EdDSA' } }
  }), { public: true })
  t.equal(nonce.headers['www-authenticate'], 'DPoP error="use_dpop_nonce", error_description="use the DPoP-Nonce", algs="ES256 ES384 EdDSA"',
    'an instance may say more than its declaration; quotes never break the header; algs are always the server\'s own list')
})

t.test('OAuth shape, by route config: the declared OAuth error and status', async (t) => {
  const oauth = { public: true, errorShape: 'oauth' }
  const client = await appThrowing(t, () => new InvalidClient('who are you'), oauth)
  t.equal(client.statusCode, 401)
  t.same(client.json(), { error: 'invalid_client', error_description: 'who are you', statusCode: 401, code: 'OAUTH_INVALID_CLIENT', message: 'who are you' })
  t.equal(client.headers['www-authenticate'], 'Basic realm="oauth"')
  t.equal(client.headers['cache-control'], 'no-store')
  t.equal(client.headers.pragma, 'no-cache')

  const grant = await appThrowing(t, () => new RefreshInvalid(), oauth)
  t.equal(grant.statusCode, 400, 'RFC 6749 §5.2: a bad grant is a 400')
  t.match(grant.json(), { error: 'invalid_grant', statusCode: 400, code: 'AUTH_REFRESH_INVALID' })
  t.equal(grant.headers['www-authenticate'], undefined, 'no challenge on a 400')

  const undeclared = await appThrowing(t, () => new ValidationFailed('missing x'), oauth)
  t.match(undeclared.json(), { error: 'invalid_request', statusCode: 400, code: 'VALIDATION_ERROR', message: 'missing x' })

  const dpop = await appThrowing(t, () => new DpopInvalid('bad proof'), oauth)
  t.equal(dpop.statusCode, 400)
  t.match(dpop.json(), { error: 'invalid_dpop_proof', code: 'AUTH_DPOP_INVALID' })

  const same = await appThrowing(t, () => new RefreshInvalid(), { public: true })
  t.equal(same.statusCode, 401, 'control: the same error in contract shape keeps its own status')
  t.equal(same.json().error, 'Unauthorized')

  const crash = await appThrowing(t, () => new Error('secret internals'), oauth)
  t.equal(crash.statusCode, 500)
  t.same(crash.json(), { statusCode: 500, code: 'INTERNAL_ERROR', error: 'Internal Server Error', message: 'Internal server error' }, 'a 5xx keeps the contract shape and says nothing')
})
