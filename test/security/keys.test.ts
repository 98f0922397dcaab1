// Signing keys: what /.well-known/jwks.json publishes in each mode (never a private member), that the
// tokens issued verify with the published key alone, rotation through JWT_PREVIOUS_PUBLIC_KEYS across
// two apps on one database, the key set's own functions (buildKeySet, publishedKeys, readKid), the
// keys:generate script, and the key material the configuration refuses.
import { createHash, createPublicKey, generateKeyPairSync, type JsonWebKey, verify } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { buildKeySet, publishedKeys, readKid } from '../../src/auth/signing-keys.js'
import { ConfigError, loadConfig } from '../../src/config.js'
import { TEST_SECRET, assertTokenRejected, bearer, freshDatabaseUrl, json, refresh, signedIn, testApp, testDatabases } from '../helpers.js'
import { b64url, decodeJwt, ed25519Pair, ed25519Signer, es256Signer, forge, hmacSigner, p256Pair, privatePem, publicPem, resign, snapshot } from './support.js'

type PublishedJwk = JsonWebKey & { kid: string, alg: string, use: string }

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']

async function jwksOf (app: FastifyInstance): Promise<PublishedJwk[]> {
  const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
  if (response.statusCode !== 200) throw new Error(`jwks: ${response.statusCode}`)
  return json(response).keys
}

/** RFC 7638, computed here independently of the server's code. */
function thumbprint (jwk: JsonWebKey): string {
  const members = jwk.kty === 'OKP' ? `{"crv":"${jwk.crv}","kty":"OKP","x":"${jwk.x}"}` : `{"crv":"${jwk.crv}","kty":"EC","x":"${jwk.x}","y":"${jwk.y}"}`
  return createHash('sha256').update(members).digest('base64url')
}

/** Verifies a JWT's signature with nothing but a published JWK. */
function verifiesWith (token: string, jwk: JsonWebKey): boolean {
  const [head, body, signature] = token.split('.') as [string, string, string]
  const key = createPublicKey({ key: jwk, format: 'jwk' })
  const input = Buffer.from(`${head}.${body}`)
  return jwk.kty === 'OKP'
    ? verify(null, input, key, Buffer.from(signature, 'base64url'))
    : verify('sha256', input, { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url'))
}

const me = (app: FastifyInstance, token: string) => app.inject({ method: 'GET', url: '/auth/me', headers: bearer(token) })

function configError (t: Test, env: Record<string, string>, variable: string, what: string, databaseUrl: string): void {
  let thrown: unknown
  try {
    loadConfig({ DATABASE_URL: databaseUrl, JWT_SECRET: TEST_SECRET, ...env })
  } catch (error) {
    thrown = error
  }
  t.ok(thrown instanceof ConfigError, `${what}: ConfigError`)
  t.equal((thrown as ConfigError | undefined)?.variable, variable, `${what}: names ${variable}`)
  t.match((thrown as Error | undefined)?.message, new RegExp(variable), `${what}: the message names ${variable}`)
}

for (const database of testDatabases()) {
  t.test(`JWKS and token signatures (${database})`, async (t) => {
    await t.test('HS256: nothing is published, the tokens are HS256', async (t) => {
      const app = await testApp(t, { database })
      const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
      t.equal(response.statusCode, 200)
      t.same(json(response), { keys: [] })
      t.notOk(response.body.includes(TEST_SECRET), 'the secret is not in the body')
      const { tokens } = await signedIn(app)
      const { header } = decodeJwt(tokens.accessToken)
      t.equal(header.alg, 'HS256')
      t.equal(header.typ, 'at+jwt')
      t.type(header.kid, 'string')
      t.notOk(String(header.kid).includes(TEST_SECRET.slice(0, 8)), 'the kid says nothing of the secret')
    })

    for (const [name, pair, expected] of [
      ['Ed25519', ed25519Pair(), { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', members: ['alg', 'crv', 'kid', 'kty', 'use', 'x'] }],
      ['P-256', p256Pair(), { kty: 'EC', crv: 'P-256', alg: 'ES256', members: ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y'] }]
    ] as const) {
      await t.test(`${name}: one public key is published and verifies every token issued`, async (t) => {
        const app = await testApp(t, { database, env: { JWT_PRIVATE_KEY: privatePem(pair.privateKey) } })
        const response = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' })
        t.equal(response.statusCode, 200)
        t.match(response.headers['content-type'], /^application\/json/)
        const keys = json(response).keys as PublishedJwk[]
        t.equal(keys.length, 1, 'one key')
        const jwk = keys[0]!
        t.same(Object.keys(jwk).sort(), expected.members, 'exactly the public members, kid, alg and use')
        for (const member of PRIVATE_MEMBERS) t.notOk(member in jwk, `no private member ${member}`)
        t.notOk(response.body.includes(privatePem(pair.privateKey).split('\n')[1]!), 'no private key material in the body')
        const exported = pair.publicKey.export({ format: 'jwk' })
        t.match(jwk, { kty: expected.kty, crv: expected.crv, alg: expected.alg, use: 'sig', x: exported.x })
        if (expected.kty === 'EC') t.equal(jwk.y, exported.y, 'y of the configured key')
        t.equal(jwk.kid, thumbprint(exported), 'kid is the RFC 7638 thumbprint')

        const { user, tokens } = await signedIn(app)
        const { header, claims } = decodeJwt(tokens.accessToken)
        t.equal(header.alg, expected.alg, `tokens are signed with ${expected.alg}`)
        t.equal(header.kid, jwk.kid, 'the token names the published key')
        t.equal(header.typ, 'at+jwt')
        t.equal(claims.sub, user.id)
        t.ok(verifiesWith(tokens.accessToken, jwk), 'the signature verifies with the published JWK alone')
        const other = name === 'Ed25519' ? ed25519Pair() : p256Pair()
        t.notOk(verifiesWith(tokens.accessToken, other.publicKey.export({ format: 'jwk' })), 'control: another key does not verify it')
        // A refreshed token is signed the same way.
        const refreshed = json(await refresh(app, tokens.refreshToken)).accessToken as string
        t.equal(decodeJwt(refreshed).header.kid, jwk.kid)
        t.ok(verifiesWith(refreshed, jwk), 'a refreshed token verifies too')
        t.equal((await me(app, tokens.accessToken)).statusCode, 200, 'and the server accepts its own token')
      })
    }
  })

  t.test(`key rotation with JWT_PREVIOUS_PUBLIC_KEYS (${database})`, async (t) => {
    const k1 = ed25519Pair()
    const k2 = p256Pair()
    const k1Kid = thumbprint(k1.publicKey.export({ format: 'jwk' }))
    const k2Kid = thumbprint(k2.publicKey.export({ format: 'jwk' }))
    const before = await testApp(t, { database, env: { JWT_PRIVATE_KEY: privatePem(k1.privateKey) } })
    const victim = await signedIn(before)
    const oldToken = victim.tokens.accessToken
    t.equal(decodeJwt(oldToken).header.kid, k1Kid, 'setup: the old token is signed by K1')

    const rotated = await testApp(t, {
      sameDatabaseAs: before,
      env: { JWT_PRIVATE_KEY: privatePem(k2.privateKey), JWT_PREVIOUS_PUBLIC_KEYS: publicPem(k1.publicKey) }
    })
    const without = await testApp(t, { sameDatabaseAs: before, env: { JWT_PRIVATE_KEY: privatePem(k2.privateKey) } })

    await t.test('the new app publishes the new key first, then the previous one', async (t) => {
      const keys = await jwksOf(rotated)
      t.same(keys.map((key) => [key.kid, key.alg]), [[k2Kid, 'ES256'], [k1Kid, 'EdDSA']])
      for (const key of keys) for (const member of PRIVATE_MEMBERS) t.notOk(member in key, `${key.alg}: no ${member}`)
      t.same((await jwksOf(without)).map((key) => key.kid), [k2Kid], 'without the previous key, only K2')
    })

    await t.test('a token signed by the previous key stays valid until it expires', async (t) => {
      const response = await me(rotated, oldToken)
      t.equal(response.statusCode, 200)
      t.equal(json(response).user.id, victim.user.id)
      const expired = resign(oldToken, ed25519Signer(k1.privateKey), { claims: { iat: 1000, exp: 2000 } })
      assertTokenRejected(t, await me(rotated, expired), 'AUTH_TOKEN_EXPIRED', 'an expired K1 token')
    })

    await t.test('new tokens are signed by the new key; the old app does not know it', async (t) => {
      const refreshed = await refresh(rotated, victim.tokens.refreshToken)
      t.equal(refreshed.statusCode, 200)
      const newToken = json(refreshed).accessToken as string
      t.same([decodeJwt(newToken).header.alg, decodeJwt(newToken).header.kid], ['ES256', k2Kid])
      t.equal((await me(rotated, newToken)).statusCode, 200)
      t.ok(verifiesWith(newToken, (await jwksOf(rotated))[0]!), 'verifies with the first published key')
      assertTokenRejected(t, await me(before, newToken), 'AUTH_TOKEN_INVALID', 'the K2 token on the K1-only app')
    })

    await t.test('without the previous key configured, the old token is refused', async (t) => {
      assertTokenRejected(t, await me(without, oldToken), 'AUTH_TOKEN_INVALID', 'K1 token on a K2-only app')
    })

    await t.test('each key keeps its own algorithm; the kid only selects among configured keys', async (t) => {
      const rows = await snapshot(rotated)
      const k1Signer = ed25519Signer(k1.privateKey)
      const k2Signer = es256Signer(k2.privateKey)
      const attacker = ed25519Pair()
      const hmacWithPem = (pem: string, kid: string) => resign(oldToken, hmacSigner(pem), { header: { alg: 'HS256', kid } })
      const cases: Array<[string, string]> = [
        ['K1\'s kid, signed by K2 (ES256)', resign(oldToken, k2Signer, { header: { alg: 'ES256', kid: k1Kid } })],
        ['K2\'s kid, signed by K1 (EdDSA)', resign(oldToken, k1Signer, { header: { alg: 'EdDSA', kid: k2Kid } })],
        ['K2\'s kid and alg, signed by K1', resign(oldToken, k1Signer, { header: { alg: 'ES256', kid: k2Kid } })],
        ['K1\'s kid with alg ES256, signed by K1', resign(oldToken, k1Signer, { header: { alg: 'ES256', kid: k1Kid } })],
        ['HS256 keyed with K1\'s public PEM, K1\'s kid', hmacWithPem(publicPem(k1.publicKey), k1Kid)],
        ['HS256 keyed with K2\'s public PEM, K2\'s kid', hmacWithPem(publicPem(k2.publicKey), k2Kid)],
        ['HS256 keyed with JWT_SECRET, the HS256 kid of that secret', hmacWithPem(TEST_SECRET, buildKeySet({ secret: TEST_SECRET }).current.kid)],
        ['a kid not in the set', resign(oldToken, ed25519Signer(attacker.privateKey), { header: { kid: thumbprint(attacker.publicKey.export({ format: 'jwk' })) } })],
        ['a kid not in the set, signed by K1', resign(oldToken, k1Signer, { header: { kid: 'no-such-key' } })],
        ['no kid, signed by K1', resign(oldToken, k1Signer, { header: { kid: undefined } })],
        ['an embedded jwk of the attacker with its kid', forge({ ...decodeJwt(oldToken).header, kid: 'attacker', jwk: attacker.publicKey.export({ format: 'jwk' }) }, decodeJwt(oldToken).claims, ed25519Signer(attacker.privateKey))],
        ['a kid header longer than readKid reads', forge({ pad: 'p'.repeat(2000), ...decodeJwt(oldToken).header }, decodeJwt(oldToken).claims, k1Signer)]
      ]
      for (const [what, token] of cases) {
        assertTokenRejected(t, await me(rotated, token), 'AUTH_TOKEN_INVALID', what)
        assertTokenRejected(t, await rotated.inject({ method: 'POST', url: '/auth/logout-all', headers: bearer(token) }), 'AUTH_TOKEN_INVALID', `${what} (logout-all)`)
      }
      t.equal(await snapshot(rotated), rows, 'no row changed')
      t.equal((await me(rotated, resign(oldToken, k1Signer, { claims: { jti: 'another-jti' } }))).statusCode, 200, 'control: a genuine K1 re-signature passes')
    })

    await t.test('several previous keys, and a previous key equal to the current one', async (t) => {
      const k0 = p256Pair()
      const k0Token = resign(oldToken, es256Signer(k0.privateKey), { header: { alg: 'ES256', kid: thumbprint(k0.publicKey.export({ format: 'jwk' })) }, claims: { jti: 'k0' } })
      const multi = await testApp(t, {
        sameDatabaseAs: before,
        env: { JWT_PRIVATE_KEY: privatePem(k2.privateKey), JWT_PREVIOUS_PUBLIC_KEYS: publicPem(k0.publicKey) + publicPem(k1.publicKey) + publicPem(k2.publicKey) }
      })
      t.same((await jwksOf(multi)).map((key) => key.alg), ['ES256', 'ES256', 'EdDSA'], 'K2, K0, K1: the current key once')
      t.equal((await me(multi, k0Token)).statusCode, 200, 'a K0 token')
      t.equal((await me(multi, oldToken)).statusCode, 200, 'a K1 token')
      assertTokenRejected(t, await me(rotated, k0Token), 'AUTH_TOKEN_INVALID', 'the K0 token where K0 is not configured')
    })
  })
}

t.test('buildKeySet, publishedKeys and readKid', async (t) => {
  await t.test('HS256: one HMAC key, nothing to publish', async (t) => {
    const keys = buildKeySet({ secret: TEST_SECRET })
    t.equal(keys.current.alg, 'HS256')
    t.equal(keys.current.signWith, TEST_SECRET)
    t.equal(keys.current.jwk, undefined)
    t.same(keys.previous, [])
    t.same(publishedKeys(keys), { keys: [] })
    t.equal(buildKeySet({ secret: TEST_SECRET }).current.kid, keys.current.kid, 'the kid is stable')
    t.not(buildKeySet({ secret: `${TEST_SECRET}x` }).current.kid, keys.current.kid, 'and changes with the secret')
    t.notOk(keys.current.kid.includes(TEST_SECRET.slice(0, 6)))
  })

  await t.test('Ed25519 and P-256: algorithm, thumbprint kid, public JWK only', async (t) => {
    for (const [pair, alg] of [[ed25519Pair(), 'EdDSA'], [p256Pair(), 'ES256']] as const) {
      const keys = buildKeySet({ secret: TEST_SECRET, privateKey: privatePem(pair.privateKey) })
      const exported = pair.publicKey.export({ format: 'jwk' })
      t.equal(keys.current.alg, alg)
      t.equal(keys.current.kid, thumbprint(exported), `${alg}: RFC 7638 kid`)
      t.equal(keys.current.jwk?.kid, keys.current.kid)
      t.equal(keys.current.verifyWith, publicPem(pair.publicKey), `${alg}: verifies with the public PEM`)
      const published = publishedKeys(keys).keys
      t.equal(published.length, 1)
      for (const member of PRIVATE_MEMBERS) t.notOk(member in published[0]!, `${alg}: no ${member}`)
      t.ok(JSON.stringify(published).includes(exported.x!), `${alg}: x published`)
      t.notOk(JSON.stringify(publishedKeys(keys)).includes(TEST_SECRET), `${alg}: the secret is never published`)
    }
  })

  await t.test('PEMs with literal \\n escapes and PEM files are read', async (t) => {
    const pair = ed25519Pair()
    const dir = mkdtempSync(join(tmpdir(), 'keys-test-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const file = join(dir, 'key.pem')
    writeFileSync(file, privatePem(pair.privateKey))
    const expected = thumbprint(pair.publicKey.export({ format: 'jwk' }))
    t.equal(buildKeySet({ secret: TEST_SECRET, privateKey: file }).current.kid, expected, 'a file path')
    t.equal(buildKeySet({ secret: TEST_SECRET, privateKey: privatePem(pair.privateKey).replace(/\n/g, '\\n') }).current.kid, expected, 'escaped newlines')
    const previousFile = join(dir, 'previous.pem')
    writeFileSync(previousFile, publicPem(pair.publicKey))
    t.equal(buildKeySet({ secret: TEST_SECRET, previousPublicKeys: previousFile }).previous[0]?.kid, expected, 'previous keys from a file')
  })

  await t.test('readKid reads only a string kid from a sane header', async (t) => {
    const claims = b64url({ sub: 'x' })
    t.equal(readKid(`${b64url({ alg: 'EdDSA', kid: 'abc' })}.${claims}.sig`), 'abc')
    t.equal(readKid(`${b64url({ alg: 'EdDSA' })}.${claims}.sig`), undefined, 'no kid')
    t.equal(readKid(`${b64url({ kid: 1 })}.${claims}.sig`), undefined, 'a number kid')
    t.equal(readKid(`${b64url({ kid: ['abc'] })}.${claims}.sig`), undefined, 'an array kid')
    t.equal(readKid(`${b64url({ kid: { $ne: null } })}.${claims}.sig`), undefined, 'an object kid')
    t.equal(readKid(`${b64url('not json')}.${claims}.sig`), undefined, 'a header that is not JSON')
    t.equal(readKid(`${b64url('null')}.${claims}.sig`), undefined, 'a null header')
    t.equal(readKid('no-dots-at-all'), undefined, 'no segments')
    t.equal(readKid(`.${claims}.sig`), undefined, 'an empty header')
    t.equal(readKid(`${b64url({ kid: 'k'.repeat(2000) })}.${claims}.sig`), undefined, 'a header over 1 KB is not read')
  })
})

t.test('key material the configuration refuses (ConfigError naming the variable)', async (t) => {
  const databaseUrl = await freshDatabaseUrl(t, 'sqlite')
  const pem = (key: { export: (options: any) => string | Buffer }, type: 'pkcs8' | 'spki') => key.export({ format: 'pem', type }).toString()
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' })
  const secp256k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
  const ed448 = generateKeyPairSync('ed448')
  const x25519 = generateKeyPairSync('x25519')
  const ed = ed25519Pair()
  const encrypted = ed.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pass phrase' }).toString()
  for (const [what, value] of [
    ['an RSA private key', pem(rsa.privateKey, 'pkcs8')],
    ['an RSA private key in PKCS#1', rsa.privateKey.export({ format: 'pem', type: 'pkcs1' }).toString()],
    ['a P-384 key', pem(p384.privateKey, 'pkcs8')],
    ['a secp256k1 key', pem(secp256k1.privateKey, 'pkcs8')],
    ['an Ed448 key', pem(ed448.privateKey, 'pkcs8')],
    ['an X25519 (key agreement) key', pem(x25519.privateKey, 'pkcs8')],
    ['a public key instead of the private one', publicPem(ed.publicKey)],
    ['an encrypted private key', encrypted],
    ['a PEM block of garbage', '-----BEGIN PRIVATE KEY-----\nZ2FyYmFnZQ==\n-----END PRIVATE KEY-----\n'],
    ['a truncated PEM', privatePem(ed.privateKey).slice(0, 60)],
    ['a path that does not exist', '/no/such/dir/key.pem'],
    ['an HMAC secret', 'not-a-pem-but-a-long-secret-0123456789abcdef']
  ] as Array<[string, string]>) {
    configError(t, { JWT_PRIVATE_KEY: value }, 'JWT_PRIVATE_KEY', what, databaseUrl)
  }
  for (const [what, value] of [
    ['an RSA public key', pem(rsa.publicKey, 'spki')],
    ['a P-384 public key', pem(p384.publicKey, 'spki')],
    ['a PEM block of garbage', '-----BEGIN PUBLIC KEY-----\nZ2FyYmFnZQ==\n-----END PUBLIC KEY-----'],
    ['text without any PEM block', 'garbage'],
    ['a path that does not exist', '/no/such/previous.pem']
  ] as Array<[string, string]>) {
    configError(t, { JWT_PRIVATE_KEY: privatePem(ed.privateKey), JWT_PREVIOUS_PUBLIC_KEYS: value }, 'JWT_PREVIOUS_PUBLIC_KEYS', `previous: ${what}`, databaseUrl)
  }
  const good = loadConfig({ DATABASE_URL: databaseUrl, JWT_SECRET: TEST_SECRET, JWT_PRIVATE_KEY: privatePem(ed.privateKey) })
  t.equal(good.jwt.keys.current.alg, 'EdDSA', 'control: an Ed25519 key is accepted')
})

t.test('npm run keys:generate writes a working key pair', async (t) => {
  const script = new URL('../../src/scripts/generate-keys.ts', import.meta.url).pathname
  // The script runs with the TypeScript loader this test runs with (the built copy needs `npm run build`).
  const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'))
  t.ok(loader.length > 0, 'setup: the TypeScript loader is known')
  const run = (args: string[]) => spawnSync(process.execPath, [...loader, script, ...args], { encoding: 'utf8', timeout: 60_000 })

  for (const [type, alg] of [['ed25519', 'EdDSA'], ['p256', 'ES256']] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'keys-generate-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const result = run(['--type', type, '--out', dir])
    t.equal(result.status, 0, `${type}: exit 0 (${result.stderr.slice(0, 300)})`)
    const privateFile = join(dir, 'jwt-private-key.pem')
    const publicFile = join(dir, 'jwt-public-key.pem')
    t.equal(statSync(privateFile).mode & 0o077, 0, `${type}: the private key is readable by its owner only`)
    const keys = buildKeySet({ secret: TEST_SECRET, privateKey: privateFile, previousPublicKeys: publicFile })
    t.equal(keys.current.alg, alg, `${type}: ${alg}`)
    t.same(keys.previous, [], `${type}: the public file is the same key (so it is not listed twice)`)
    t.match(result.stdout, keys.current.kid, `${type}: prints the kid`)
    t.match(result.stdout, /JWT_PREVIOUS_PUBLIC_KEYS/, `${type}: explains rotation`)
    t.equal(createPublicKey(readFileSync(publicFile, 'utf8')).asymmetricKeyType, type === 'ed25519' ? 'ed25519' : 'ec')
    const again = run(['--type', type, '--out', dir])
    t.not(again.status, 0, `${type}: refuses to overwrite an existing key`)
    t.equal(buildKeySet({ secret: TEST_SECRET, privateKey: privateFile }).current.kid, keys.current.kid, `${type}: the key is unchanged`)
  }
  const empty = mkdtempSync(join(tmpdir(), 'keys-generate-'))
  t.teardown(() => rmSync(empty, { recursive: true, force: true }))
  t.not(run(['--type', 'rsa', '--out', empty]).status, 0, 'an unsupported type is refused')
})
