// The JWT attack battery (RFC 8725, and the past CVEs of jsonwebtoken and fast-jwt), against an app
// signing with HS256, with an Ed25519 key (EdDSA) and with a P-256 key (ES256). Tokens are forged by
// hand with node:crypto, so no JWT library smooths anything over. Every forged token is sent to
// read-only and state-changing routes alike (logout-all, logout, session deletion, order creation);
// each must get 401 with the contract's code and RFC 6750 challenge, and the database must not change.
// A control shows the forging machinery itself produces tokens the server accepts.
import { type KeyObject, createHash, randomUUID } from 'node:crypto'
import { type AddressInfo, connect } from 'node:net'
import t, { type Test } from 'tap'
import type { FastifyInstance, InjectOptions } from 'fastify'
import { ConfigError, loadConfig } from '../../src/config.js'
import { assertError, assertTokenRejected, freshDatabaseUrl, json, login, register, signedIn, testApp, testDatabases } from '../helpers.js'
import { type KeyMode, type Signer, b64url, decodeJwt, ed25519Pair, ed25519Signer, es256Signer, forge, hmacSigner, keyModes, nowSeconds, p256Pair, resign, snapshot } from './support.js'

/** Order of the P-256 group and of the Ed25519 group (for signature malleability cases). */
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')
const ED25519_L = (1n << 252n) + 27742317777372353535851937790883648493n

const toBytes = (value: bigint, length: number, littleEndian = false): Buffer => {
  const bytes = Buffer.from(value.toString(16).padStart(length * 2, '0'), 'hex')
  return littleEndian ? Buffer.from(bytes.reverse()) : bytes
}
const fromBytes = (bytes: Buffer, littleEndian = false): bigint =>
  BigInt('0x' + Buffer.from(littleEndian ? Buffer.from(bytes).reverse() : bytes).toString('hex'))

/** A DER (ASN.1 SEQUENCE of two INTEGERs) encoding of a raw r||s ECDSA signature. */
function derSignature (raw: Buffer): Buffer {
  const integer = (bytes: Buffer) => {
    let trimmed = bytes
    while (trimmed.length > 1 && trimmed[0] === 0 && trimmed[1]! < 0x80) trimmed = trimmed.subarray(1)
    if (trimmed[0]! >= 0x80) trimmed = Buffer.concat([Buffer.from([0]), trimmed])
    return Buffer.concat([Buffer.from([0x02, trimmed.length]), trimmed])
  }
  const body = Buffer.concat([integer(raw.subarray(0, 32)), integer(raw.subarray(32))])
  return Buffer.concat([Buffer.from([0x30, body.length]), body])
}

/** An attacker's own key pair of the mode's kind (Ed25519 for the HS256 app), and how it signs. */
function attackerKey (mode: KeyMode): { alg: string, signer: Signer, publicKey: KeyObject } {
  if (mode.name === 'ES256') {
    const pair = p256Pair()
    return { alg: 'ES256', signer: es256Signer(pair.privateKey), publicKey: pair.publicKey }
  }
  const pair = ed25519Pair()
  return { alg: 'EdDSA', signer: ed25519Signer(pair.privateKey), publicKey: pair.publicKey }
}

/** The byte and text forms a public key takes that a confused verifier might use as an HMAC secret. */
function publicKeyForms (publicKey: KeyObject, servedJwk: Record<string, unknown>): Array<[string, string | Buffer]> {
  const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString()
  const jwk = publicKey.export({ format: 'jwk' })
  const raw = jwk.kty === 'OKP'
    ? Buffer.from(jwk.x!, 'base64url')
    : Buffer.concat([Buffer.from([4]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')])
  return [
    ['PEM (SPKI) as served', pem],
    ['PEM without the trailing newline', pem.trimEnd()],
    ['PEM with a leading newline and spaces (CVE-2023-48223)', `\n  ${pem}`],
    ['PEM with CRLF line ends', pem.replace(/\n/g, '\r\n')],
    ['PEM with literal \\n escapes', pem.trimEnd().replace(/\n/g, '\\n')],
    ['DER (SPKI) bytes', publicKey.export({ format: 'der', type: 'spki' })],
    ['the JWK as published (JSON text)', JSON.stringify(servedJwk)],
    ['the JWK as exported (JSON text)', JSON.stringify(jwk)],
    ['raw public key bytes', raw],
    ['the JWK x member as text', jwk.x!]
  ]
}

for (const database of testDatabases()) {
  for (const mode of keyModes()) {
    t.test(`JWT attacks on an ${mode.name} app (${database})`, async (t) => {
      const app = await testApp(t, { database, env: { ...mode.env, ACCESS_TOKEN_TTL: '900' } })
      const victim = await signedIn(app)
      const real = victim.tokens.accessToken
      const [head, body, signature] = real.split('.') as [string, string, string]
      const { header, claims } = decodeJwt(real)
      const jwks = json(await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })).keys as Array<Record<string, unknown>>
      // An order of the victim's makes "nothing changed" cover that table too.
      const created = await app.inject({ method: 'POST', url: '/orders', headers: { authorization: `Bearer ${real}` }, payload: { item: 'book', quantity: 1 } })
      t.equal(created.statusCode, 201, 'setup: the victim has an order')
      const resigned = (changes: Parameters<typeof resign>[2]) => resign(real, mode.signer, changes)

      /** Requests that would read or change the victim's state if the token were accepted. */
      const targets = (token: string): InjectOptions[] => {
        const authorization = `Bearer ${token}`
        return [
          { method: 'GET', url: '/auth/me', headers: { authorization } },
          { method: 'POST', url: '/auth/logout-all', headers: { authorization } },
          { method: 'POST', url: '/auth/logout', headers: { authorization } },
          { method: 'DELETE', url: `/auth/sessions/${String(claims.sid)}`, headers: { authorization } },
          { method: 'POST', url: '/orders', headers: { authorization }, payload: { item: 'forged', quantity: 1 } }
        ]
      }

      /** Each token is refused with `code` on every target, and no row of any table changes. */
      async function refused (t: Test, cases: Array<[string, string]>, code = 'AUTH_TOKEN_INVALID') {
        const before = await snapshot(app)
        for (const [what, token] of cases) {
          for (const target of targets(token)) {
            assertTokenRejected(t, await app.inject(target), code, `${what} → ${target.method} ${String(target.url)}`)
          }
        }
        t.equal(await snapshot(app), before, 'no row changed')
      }

      await t.test('control: a token forged with the server\'s own key and claims is accepted', async (t) => {
        const copy = resigned({ claims: { jti: randomUUID() } })
        t.not(copy, real, 'a different token')
        const response = await app.inject({ method: 'GET', url: '/auth/me', headers: { authorization: `Bearer ${copy}` } })
        t.equal(response.statusCode, 200)
        t.equal(json(response).user.id, victim.user.id)
        t.equal(header.alg, mode.name, 'the server signs with the mode\'s algorithm')
        t.equal(header.typ, 'at+jwt')
      })

      await t.test('alg "none" in any casing is refused', async (t) => {
        const cases: Array<[string, string]> = []
        for (const alg of ['none', 'None', 'NONE', 'nOnE', 'none ', '']) {
          const unsigned = b64url({ ...header, alg })
          cases.push([`alg ${JSON.stringify(alg)}, empty signature`, `${unsigned}.${body}.`])
          cases.push([`alg ${JSON.stringify(alg)}, original signature`, `${unsigned}.${body}.${signature}`])
        }
        cases.push(['no alg at all', `${b64url({ typ: header.typ, kid: header.kid })}.${body}.`])
        cases.push(['alg null', `${b64url({ ...header, alg: null })}.${body}.${signature}`])
        await refused(t, cases)
      })

      await t.test('a stripped signature is refused', async (t) => {
        await refused(t, [
          ['empty signature segment', `${head}.${body}.`],
          ['signature segment removed', `${head}.${body}`],
          ['signature of zero bytes encoded as padding', `${head}.${body}.==`]
        ])
      })

      await t.test('an altered signature is refused', async (t) => {
        const bytes = Buffer.from(signature, 'base64url')
        const flipped = Buffer.from(bytes)
        flipped[Math.floor(bytes.length / 2)]! ^= 0x01
        const other = (await login(app, victim.username, victim.password)).accessToken.split('.')[2]!
        const cases: Array<[string, string]> = [
          ['one bit flipped', `${head}.${body}.${flipped.toString('base64url')}`],
          ['last byte removed', `${head}.${body}.${bytes.subarray(0, -1).toString('base64url')}`],
          ['a byte appended', `${head}.${body}.${Buffer.concat([bytes, Buffer.from([0])]).toString('base64url')}`],
          ['all zero bytes', `${head}.${body}.${Buffer.alloc(bytes.length).toString('base64url')}`],
          ['another token\'s signature', `${head}.${body}.${other}`],
          ['the signature encoded as standard base64', `${head}.${body}.${bytes.toString('base64')}`]
        ]
        if (mode.name === 'ES256') {
          // CVE-2022-21449 ("psychic signatures"): r = s = 0.
          cases.push(['ECDSA r = s = 0', `${head}.${body}.${Buffer.alloc(64).toString('base64url')}`])
          // JWS wants raw r||s (RFC 7518 §3.4); the DER form of a valid signature is another encoding.
          cases.push(['the valid signature DER-encoded', `${head}.${body}.${derSignature(bytes).toString('base64url')}`])
          // r, s >= n: out of range, equal to a valid signature only modulo n.
          const r = fromBytes(bytes.subarray(0, 32))
          const s = fromBytes(bytes.subarray(32))
          if (s + P256_N < (1n << 256n)) cases.push(['s + n', `${head}.${body}.${Buffer.concat([toBytes(r, 32), toBytes(s + P256_N, 32)]).toString('base64url')}`])
        }
        if (mode.name === 'EdDSA') {
          // RFC 8032 §5.1.7: S must be below L; S + L is the classic malleability of Ed25519.
          const s = fromBytes(bytes.subarray(32), true)
          cases.push(['Ed25519 S + L', `${head}.${body}.${Buffer.concat([bytes.subarray(0, 32), toBytes(s + ED25519_L, 32, true)]).toString('base64url')}`])
        }
        await refused(t, cases)
      })

      await t.test('altered claims under the original signature are refused', async (t) => {
        const altered = (patch: Record<string, unknown>) => `${head}.${b64url({ ...claims, ...patch })}.${signature}`
        const other = await register(app)
        await refused(t, [
          ['sub changed to another user', altered({ sub: other.user.id })],
          ['ver raised', altered({ ver: Number(claims.ver) + 1 })],
          ['exp extended', altered({ exp: Number(claims.exp) + 86_400 })],
          ['sid changed', altered({ sid: randomUUID() })],
          ['a claim added', altered({ role: 'admin' })],
          ['the same claims with whitespace in the JSON', `${head}.${b64url(JSON.stringify(claims, null, 1))}.${signature}`],
          ['the header re-encoded with another member order', `${b64url(Object.fromEntries(Object.entries(header).reverse()))}.${body}.${signature}`]
        ])
      })

      await t.test('a token signed with a key that is not the server\'s is refused', async (t) => {
        const attacker = attackerKey(mode)
        const cases: Array<[string, string]> = [
          ['HS256 with another secret', resign(real, hmacSigner('another-secret-0123456789-abcdefghijklmnop'), { header: { alg: 'HS256' } })],
          [`${attacker.alg} with an attacker's key, the server's kid`, resign(real, attacker.signer, { header: { alg: attacker.alg } })]
        ]
        await refused(t, cases)
      })

      await t.test('algorithm confusion is refused (the algorithm is pinned to the key)', async (t) => {
        const secretSigned = (alg: string, hash: string) => {
          const input = `${b64url({ ...header, alg })}.${body}`
          return `${input}.${hmacSigner(app.config.jwt.secret, hash)(input).toString('base64url')}`
        }
        const cases: Array<[string, string]> = [
          ['HS384 with the server\'s secret', secretSigned('HS384', 'sha384')],
          ['HS512 with the server\'s secret', secretSigned('HS512', 'sha512')],
          ['alg "hs256" (lower case) with the server\'s secret', secretSigned('hs256', 'sha256')],
          ['alg "RS256" header on an HMAC signature', secretSigned('RS256', 'sha256')]
        ]
        if (mode.name === 'HS256') {
          // The HS256 app has no public key; an asymmetric token with its own key must still be refused.
          const attacker = attackerKey({ ...mode, name: 'EdDSA' })
          cases.push(['EdDSA with an attacker key', resign(real, attacker.signer, { header: { alg: 'EdDSA' } })])
          const ec = attackerKey({ ...mode, name: 'ES256' })
          cases.push(['ES256 with an attacker key', resign(real, ec.signer, { header: { alg: 'ES256' } })])
        } else {
          // The server still holds JWT_SECRET (for sealing refresh tokens): it must not verify tokens.
          cases.push(['HS256 with the server\'s JWT_SECRET', secretSigned('HS256', 'sha256')])
          t.equal(jwks.length, 1, 'setup: one published key')
          for (const [form, key] of publicKeyForms(mode.publicKey!, jwks[0]!)) {
            for (const alg of ['HS256', 'HS512']) {
              const input = `${b64url({ ...header, alg })}.${body}`
              cases.push([`${alg} keyed with the public key, ${form}`, `${input}.${hmacSigner(key, alg === 'HS256' ? 'sha256' : 'sha512')(input).toString('base64url')}`])
            }
          }
          const other = attackerKey({ ...mode, name: mode.name === 'EdDSA' ? 'ES256' : 'EdDSA' })
          cases.push([`${other.alg} (the other asymmetric algorithm) with an attacker key`, resign(real, other.signer, { header: { alg: other.alg } })])
        }
        await refused(t, cases)
      })

      await t.test('empty or trivial HMAC keys are refused', async (t) => {
        const withKey = (key: string | Buffer) => {
          const input = `${b64url({ ...header, alg: 'HS256' })}.${body}`
          return `${input}.${hmacSigner(key)(input).toString('base64url')}`
        }
        await refused(t, [
          ['HS256 with an empty key', withKey('')],
          ['HS256 with a one-byte zero key', withKey(Buffer.alloc(1))],
          ['HS256 with the key "secret"', withKey('secret')],
          ['HS256 keyed with the kid', withKey(String(header.kid))]
        ])
      })

      await t.test('kid injection is refused (the kid only selects from the server\'s own keys)', async (t) => {
        const withKid = (kid: unknown) => resigned({ header: { kid } })
        await refused(t, [
          ['kid path traversal', withKid('../../../../../../dev/null')],
          ['kid absolute path', withKid('/dev/null')],
          ['kid file URL', withKid('file:///etc/passwd')],
          ['kid SQL injection', withKid('\' OR \'1\'=\'1\' --')],
          ['kid SQL statement', withKid('x"; DROP TABLE "User"; --')],
          ['kid NoSQL object', withKid({ $ne: null })],
          ['kid huge (10 000 characters)', withKid('k'.repeat(10_000))],
          ['kid with a NUL byte', withKid(`${String(header.kid)}\u0000`)],
          ['kid of another key prefixed to the real one', withKid(`x${String(header.kid)}`)],
          ['kid empty', withKid('')],
          ['kid null', withKid(null)],
          ['kid a number', withKid(1)],
          ['kid an array holding the real kid', withKid([header.kid])],
          ['no kid', withKid(undefined)]
        ])
      })

      await t.test('jku, x5u, x5c and embedded jwk headers are ignored: the attacker\'s key is never used', async (t) => {
        const attacker = attackerKey(mode)
        const attackerJwk = { ...attacker.publicKey.export({ format: 'jwk' }), alg: attacker.alg, use: 'sig' }
        const attackerKid = createHash('sha256').update(JSON.stringify(attackerJwk)).digest('base64url')
        const signedByAttacker = (extra: Record<string, unknown>) => resign(real, attacker.signer, { header: { alg: attacker.alg, ...extra } })
        const oct = { kty: 'oct', k: b64url('attacker-chosen-hmac-key-0123456789') }
        const hmacWithEmbeddedKey = (() => {
          const input = `${b64url({ ...header, alg: 'HS256', jwk: oct })}.${body}`
          return `${input}.${hmacSigner('attacker-chosen-hmac-key-0123456789')(input).toString('base64url')}`
        })()
        await refused(t, [
          ['embedded jwk, server\'s kid', signedByAttacker({ jwk: attackerJwk })],
          ['embedded jwk, its own kid', signedByAttacker({ jwk: { ...attackerJwk, kid: attackerKid }, kid: attackerKid })],
          ['jku to an attacker URL', signedByAttacker({ jku: 'https://attacker.example/jwks.json', kid: attackerKid })],
          ['jku to the server\'s own JWKS path', signedByAttacker({ jku: 'http://localhost/.well-known/jwks.json' })],
          ['x5u to an attacker URL', signedByAttacker({ x5u: 'https://attacker.example/cert.pem' })],
          ['x5c with an attacker certificate', signedByAttacker({ x5c: [attacker.publicKey.export({ format: 'der', type: 'spki' }).toString('base64')] })],
          ['embedded symmetric (oct) jwk with HS256', hmacWithEmbeddedKey]
        ])
      })

      await t.test('crit headers the server does not understand are refused', async (t) => {
        await refused(t, [
          ['crit with an unknown extension', resigned({ header: { crit: ['x-unknown'], 'x-unknown': true } })],
          ['crit b64 (RFC 7797 unencoded payload)', resigned({ header: { crit: ['b64'], b64: false } })],
          ['crit naming a registered header', resigned({ header: { crit: ['exp'] } })],
          ['crit empty', resigned({ header: { crit: [] } })],
          ['crit not an array', resigned({ header: { crit: 'x-unknown', 'x-unknown': 1 } })]
        ])
      })

      await t.test('a token of another type is refused (typ must be at+jwt)', async (t) => {
        const withTyp = (typ: unknown) => resigned({ header: { typ } })
        await refused(t, [
          ['typ JWT', withTyp('JWT')],
          ['typ application/jwt', withTyp('application/jwt')],
          ['typ id_token-like', withTyp('id+jwt')],
          ['typ refresh', withTyp('rt+jwt')],
          ['typ dpop+jwt', withTyp('dpop+jwt')],
          ['typ with a trailing space', withTyp('at+jwt ')],
          ['typ as an array', withTyp(['at+jwt'])],
          ['typ absent', withTyp(undefined)]
        ])
      })

      await t.test('an access token is never a refresh token, and a refresh token never an access token', async (t) => {
        const before = await snapshot(app)
        await refused(t, [['the refresh token as a Bearer token', victim.tokens.refreshToken]])
        const asRefresh = await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: real } })
        t.ok([400, 401].includes(asRefresh.statusCode), `access token as refresh token: ${asRefresh.statusCode}`)
        assertError(t, asRefresh, asRefresh.statusCode, asRefresh.statusCode === 400 ? 'VALIDATION_ERROR' : 'AUTH_REFRESH_INVALID', 'access token as refresh token')
        t.notOk(JSON.stringify(json(asRefresh)).includes('accessToken'), 'no tokens issued')
        const asLogout = await app.inject({ method: 'POST', url: '/auth/logout', payload: { refreshToken: real } })
        t.ok([400, 401].includes(asLogout.statusCode), `access token as logout refresh token: ${asLogout.statusCode}`)
        const asCookie = await app.inject({
          method: 'POST', url: '/auth/refresh', cookies: { '__Secure-refresh_token': real }, headers: { origin: 'https://app.example.com', 'x-requested-with': 'fetch' }
        })
        t.ok([400, 401].includes(asCookie.statusCode), `access token as refresh cookie: ${asCookie.statusCode}`)
        const asGrant = await app.inject({
          method: 'POST', url: '/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: real, client_id: 'app' }).toString()
        })
        t.equal(asGrant.statusCode, 400, 'access token as OAuth refresh_token grant')
        t.equal(json(asGrant).error, 'invalid_grant')
        t.equal(await snapshot(app), before, 'no row changed')
      })

      await t.test('a missing, malformed or past exp is refused', async (t) => {
        const now = nowSeconds()
        await refused(t, [
          ['exp in the past', resigned({ claims: { iat: now - 1000, exp: now - 100, jti: randomUUID() } })],
          ['exp one second ago', resigned({ claims: { iat: now - 901, exp: now - 1, jti: randomUUID() } })],
          ['exp at the epoch', resigned({ claims: { iat: 0, exp: 0, jti: randomUUID() } })],
          ['exp negative', resigned({ claims: { exp: -1, jti: randomUUID() } })]
        ], 'AUTH_TOKEN_EXPIRED')
        await refused(t, [
          ['exp missing', resigned({ claims: { exp: undefined } })],
          ['exp as a string', resigned({ claims: { exp: String(now + 600) } })],
          ['exp null', resigned({ claims: { exp: null } })],
          ['exp an array', resigned({ claims: { exp: [now + 600] } })],
          ['exp an object', resigned({ claims: { exp: { $gt: 0 } } })],
          ['exp true', resigned({ claims: { exp: true } })]
        ])
      })

      await t.test('an nbf in the future or malformed is refused', async (t) => {
        const now = nowSeconds()
        await refused(t, [
          ['nbf in ten minutes', resigned({ claims: { nbf: now + 600 } })],
          ['nbf far in the future', resigned({ claims: { nbf: now + 10 * 365 * 86_400 } })],
          ['nbf as a string', resigned({ claims: { nbf: String(now - 10) } })],
          ['nbf null', resigned({ claims: { nbf: null } })]
        ])
      })

      await t.test('a wrong, missing or smuggled iss is refused', async (t) => {
        const iss = String(claims.iss)
        await refused(t, [
          ['iss of another issuer', resigned({ claims: { iss: 'https://evil.example.com' } })],
          ['iss missing', resigned({ claims: { iss: undefined } })],
          ['iss in another case', resigned({ claims: { iss: iss.toUpperCase() } })],
          ['iss with a trailing space', resigned({ claims: { iss: `${iss} ` } })],
          // CVE-2025-30144 (fast-jwt): an array iss passed when any entry matched.
          ['iss an array holding the real issuer and another', resigned({ claims: { iss: ['https://evil.example.com', iss] } })],
          ['iss an array holding only the real issuer', resigned({ claims: { iss: [iss] } })],
          ['iss null', resigned({ claims: { iss: null } })],
          ['iss empty', resigned({ claims: { iss: '' } })]
        ])
      })

      await t.test('a wrong or missing aud is refused', async (t) => {
        const aud = String(claims.aud)
        await refused(t, [
          ['aud of another API', resigned({ claims: { aud: 'some-other-api' } })],
          ['aud missing', resigned({ claims: { aud: undefined } })],
          ['aud an array without ours', resigned({ claims: { aud: ['some-other-api', `${aud}x`] } })],
          ['aud in another case', resigned({ claims: { aud: aud.toUpperCase() } })],
          ['aud a number', resigned({ claims: { aud: 1 } })],
          ['aud null', resigned({ claims: { aud: null } })],
          ['aud empty', resigned({ claims: { aud: '' } })]
        ])
      })

      await t.test('required claims of the wrong type are refused even with a valid signature', async (t) => {
        await refused(t, [
          ['sub a number', resigned({ claims: { sub: 1 } })],
          ['sub missing', resigned({ claims: { sub: undefined } })],
          ['sid an object', resigned({ claims: { sid: { $ne: null } } })],
          ['ver a string', resigned({ claims: { ver: String(claims.ver) } })],
          ['ver a fraction', resigned({ claims: { ver: 0.5 } })],
          ['ver missing', resigned({ claims: { ver: undefined } })],
          ['jti missing', resigned({ claims: { jti: undefined } })],
          ['iat missing', resigned({ claims: { iat: undefined } })]
        ])
      })

      await t.test('malformed token shapes are refused', async (t) => {
        const bom = b64url(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(header))]))
        const signedRaw = (headerText: string, claimsText: string) => {
          const input = `${b64url(headerText)}.${b64url(claimsText)}`
          return `${input}.${mode.signer(input).toString('base64url')}`
        }
        await refused(t, [
          ['one segment', head],
          ['two segments', `${head}.${body}`],
          ['four segments', `${real}.${signature}`],
          ['five segments (JWE shape)', `${head}.${body}.${signature}.${body}.${signature}`],
          ['only dots', '..'],
          ['four dots', '....'],
          ['a lone dot', '.'],
          ['empty header segment', `.${body}.${signature}`],
          ['empty payload segment', `${head}..${signature}`],
          ['padding on the header', `${head}=.${body}.${signature}`],
          ['padding on the payload', `${head}.${body}==.${signature}`],
          ['padding on the signature', `${real}=`],
          ['standard base64 alphabet in the payload', `${head}.${Buffer.from(JSON.stringify({ ...claims, pad: '>>>???' })).toString('base64')}.${signature}`],
          ['non-ASCII in the header segment', `${head}é.${body}.${signature}`],
          ['non-ASCII in the signature', `${real}ÿ`],
          ['a header that is not JSON', `${b64url('not json')}.${body}.${signature}`],
          ['a header that is a JSON array', signedRaw('[]', JSON.stringify(claims))],
          ['a header that is JSON null', signedRaw('null', JSON.stringify(claims))],
          ['a header with a byte-order mark', `${bom}.${body}.${signature}`],
          ['claims that are a JSON array', signedRaw(JSON.stringify(header), '[]')],
          ['claims that are a JSON string', signedRaw(JSON.stringify(header), '"claims"')],
          ['claims that are not JSON', signedRaw(JSON.stringify(header), '{"sub":')],
          ['a 15 KB token of garbage', 'A'.repeat(7_000) + '.' + 'B'.repeat(7_000) + '.' + 'C'.repeat(1_360)],
          ['a 15 KB token with a real header and an unsigned payload', `${head}.${b64url({ ...claims, junk: 'x'.repeat(11_000) })}.${signature}`],
          ['a token made of spaces', '\t'],
          ['a token with a tab inside', `${head}\t.${body}.${signature}`]
        ])
        const before = await snapshot(app)
        for (const authorization of ['Bearer ', `Bearer ${real} ${real}`, `Bearer\t${real}`, `Bearer ${head}. ${body}.${signature}`]) {
          assertTokenRejected(t, await app.inject({ method: 'POST', url: '/auth/logout-all', headers: { authorization } }), 'AUTH_TOKEN_INVALID', `Authorization ${JSON.stringify(authorization.slice(0, 20))}…`)
        }
        t.equal(await snapshot(app), before, 'no row changed')
      })

      await t.test('oversized headers get a 4xx over a real socket, never a 5xx', async (t) => {
        const port = await listen(app)
        const before = await snapshot(app)
        const token15k = `${head}.${b64url({ ...claims, junk: 'x'.repeat(11_000) })}.${signature}`
        t.ok(token15k.length > 15_000 && token15k.length < 16_000, 'setup: a 15 KB token')
        const fifteen = await rawRequest(port, 'POST', '/auth/logout-all', { authorization: `Bearer ${token15k}` })
        t.equal(fifteen.statusCode, 401, '15 KB token: 401')
        t.equal(fifteen.headers['www-authenticate'], 'Bearer error="invalid_token"')
        t.equal(JSON.parse(fifteen.body).code, 'AUTH_TOKEN_INVALID')
        for (const [what, headers] of [
          ['a 20 KB Authorization header', { authorization: `Bearer ${'a'.repeat(20_000)}` }],
          ['a 1 MB Authorization header', { authorization: `Bearer ${'a'.repeat(1024 * 1024)}` }],
          ['a 20 KB token header with a 20 KB kid', { authorization: `Bearer ${resigned({ header: { kid: 'k'.repeat(20_000) } })}` }],
          ['many large headers', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`x-filler-${i}`, 'f'.repeat(1000)]))]
        ] as Array<[string, Record<string, string>]>) {
          const response = await rawRequest(port, 'POST', '/auth/logout-all', headers)
          t.ok(response.statusCode >= 400 && response.statusCode < 500, `${what}: 4xx (got ${response.statusCode})`)
        }
        t.equal(await snapshot(app), before, 'no row changed')
        t.equal((await rawRequest(port, 'GET', '/health', {})).statusCode, 200, 'the server still serves')
      })

      await t.test('after the whole battery the real token still works and the victim\'s session is intact', async (t) => {
        const response = await app.inject({ method: 'GET', url: '/auth/sessions', headers: { authorization: `Bearer ${real}` } })
        t.equal(response.statusCode, 200)
        const sessions = json(response).sessions as Array<{ id: string }>
        t.ok(sessions.some((session) => session.id === claims.sid), 'the session is still there')
        t.equal((await app.db.order.count({ where: { userId: victim.user.id } })), 1, 'no forged order was created')
      })
    })
  }
}

t.test('empty or short HMAC keys stop the start (ConfigError naming JWT_SECRET)', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  const start = (env: Record<string, string>) => () => loadConfig({ DATABASE_URL: databaseUrl, ...env })
  const refusedSecret = (env: Record<string, string>, what: string) => {
    let thrown: unknown
    try {
      start(env)()
    } catch (error) {
      thrown = error
    }
    t.ok(thrown instanceof ConfigError, `${what}: ConfigError`)
    t.equal((thrown as ConfigError | undefined)?.variable, 'JWT_SECRET', `${what}: names JWT_SECRET`)
    t.match((thrown as Error | undefined)?.message, /JWT_SECRET/, `${what}: the message names JWT_SECRET`)
  }
  refusedSecret({ JWT_SECRET: 'short' }, 'a short secret')
  refusedSecret({ JWT_SECRET: 'k7#Qp2!zR9@xL4$wM8%vN3^tB6&yC1*' }, '31 bytes of many characters')
  // The contract takes any key of at least 32 bytes as given; a low-variety one only draws a warning.
  for (const [secret, what] of [['a'.repeat(64), 'one character repeated'], ['ab'.repeat(18), 'two characters repeated'], ['0123456'.repeat(6), 'seven distinct characters']]) {
    const config = start({ JWT_SECRET: secret! })()
    t.equal(config.jwt.secret, secret, `${what}: used as given`)
    t.ok(config.warnings.some((warning) => warning.includes('JWT_SECRET')), `${what}: a warning`)
  }
  refusedSecret({ JWT_SECRET: '', NODE_ENV: 'production' }, 'empty in production')
  refusedSecret({ NODE_ENV: 'production' }, 'absent in production')
  // Outside production an empty value means "not set": a random secret is generated, never the empty key.
  const generated = loadConfig({ DATABASE_URL: databaseUrl, JWT_SECRET: '' })
  t.ok(Buffer.byteLength(generated.jwt.secret) >= 32, 'an empty JWT_SECRET is replaced by a generated secret')
  t.equal(generated.jwt.keys.current.signWith, generated.jwt.secret)
  const good = loadConfig({ DATABASE_URL: databaseUrl, JWT_SECRET: 'k7#Qp2!zR9@xL4$wM8%vN3^tB6&yC1*d' })
  t.equal(good.jwt.keys.current.alg, 'HS256', 'control: a 32-byte secret of many characters starts')
})

/** Starts the app on a real socket (a random port) for the tests that need Node's HTTP parser. */
async function listen (app: FastifyInstance): Promise<number> {
  if (app.server.listening) return (app.server.address() as AddressInfo).port
  await app.listen({ host: '127.0.0.1', port: 0 })
  return (app.server.address() as AddressInfo).port
}

/**
 * One HTTP/1.1 request over a plain socket. Node answers an oversized head with 431 and closes the
 * connection while the client may still be writing, so write errors are ignored and whatever
 * response arrived is parsed.
 */
function rawRequest (port: number, method: string, path: string, headers: Record<string, string>): Promise<{ statusCode: number, headers: Record<string, string>, body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port })
    const chunks: Buffer[] = []
    socket.on('data', (chunk: Buffer) => chunks.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8')
      const [head = '', ...rest] = text.split('\r\n\r\n')
      const [statusLine = '', ...headerLines] = head.split('\r\n')
      const statusCode = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1])
      if (!Number.isInteger(statusCode)) return reject(new Error(`no HTTP response (got ${JSON.stringify(text.slice(0, 80))})`))
      const parsed = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]))
      resolve({ statusCode, headers: parsed, body: rest.join('\r\n\r\n') })
    })
    const lines = [`${method} ${path} HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', 'content-length: 0', ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`)]
    socket.write(lines.join('\r\n') + '\r\n\r\n')
  })
}
