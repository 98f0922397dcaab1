// End to end with real processes: the built auth server (dist/src/server.js, Ed25519 keys) and a
// separate resource server using @auth-server/verifier (test/fixtures/resource-server.mjs). Every
// way a session ends at the auth server reaches the resource server through the revocation feed;
// the lag is measured and printed. Then the feed connection is cut during revocations (nothing is
// missed after the reconnect), and, on PostgreSQL + Redis, the revocation is made on a second
// auth-server instance.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { PASSWORD, TEST_SECRET, type Teardown, freshDatabaseUrl, testDatabases } from './helpers.js'
import { freePort, relay } from './network-support.js'
import { proof, proofKey } from '../packages/verifier/test/proofs.js'

const ROOT = new URL('..', import.meta.url).pathname
const RS_ID = 'orders'
const RS_SECRET = 'orders-feed-secret-0123456789'

function newestMtime (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs)
  }
  return newest
}

/** Builds what the processes run when the sources are newer than the build. */
function ensureBuilt () {
  const server = join(ROOT, 'dist/src/server.js')
  if (!existsSync(server) || statSync(server).mtimeMs < newestMtime(join(ROOT, 'src'))) {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
  }
  const verifier = join(ROOT, 'packages/verifier/dist/index.js')
  if (!existsSync(verifier) || statSync(verifier).mtimeMs < newestMtime(join(ROOT, 'packages/verifier/src'))) {
    execFileSync('npx', ['tsc', '-p', 'packages/verifier/tsconfig.json'], { cwd: ROOT, stdio: 'inherit' })
  }
}


function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
  return new Promise((resolve) => { child.once('exit', () => resolve()); child.kill('SIGTERM') })
}

const privateKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()

/** The auth server at `base`; its public name (PUBLIC_URL, JWT_ISSUER) is `issuer`, by default `base`. */
async function startAuthServer (t: Teardown, databaseUrl: string, base: string, issuer = base, env: Record<string, string> = {}) {
  const port = Number(new URL(base).port)
  const cwd = mkdtempSync(join(tmpdir(), 'auth-e2e-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/server.js')], {
    cwd,
    env: {
      PATH: process.env.PATH,
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      JWT_SECRET: TEST_SECRET,
      JWT_PRIVATE_KEY: privateKey,
      JWT_ISSUER: issuer,
      PUBLIC_URL: issuer,
      RESOURCE_SERVERS: `${RS_ID}:${RS_SECRET}`,
      RATE_LIMIT_MAX: '100000',
      PASSWORD_HASH_CONCURRENCY: '1',
      REFRESH_REUSE_GRACE: '0',
      LOG_LEVEL: 'warn',
      ...env
    },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  t.teardown(() => stop(child))
  const started = Date.now()
  // Generous: this machine's cores are shared with other test runs.
  while (Date.now() - started < 90_000) {
    if (child.exitCode !== null) throw new Error(`auth server exited with ${child.exitCode}`)
    try {
      if ((await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) })).ok) return child
    } catch {}
    await sleep(100)
  }
  throw new Error('auth server did not start')
}

/** The verifier finds the JWKS and the feed from the issuer's metadata, unless the feed URL is given. */
async function startResourceServer (t: Teardown, issuer: string, revocationsUrl?: string) {
  const child = spawn(process.execPath, [join(ROOT, 'test/fixtures/resource-server.mjs')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      ISSUER: issuer,
      AUDIENCE: 'auth-server-api',
      CLIENT_ID: RS_ID,
      CLIENT_SECRET: RS_SECRET,
      REVOCATIONS_URL: revocationsUrl ?? ''
    },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => stop(child))
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    child.stdout!.on('data', (chunk) => {
      out += String(chunk)
      const line = out.split('\n').find((candidate) => candidate.startsWith('{'))
      if (line !== undefined) resolve(JSON.parse(line).port)
    })
    child.once('exit', (code) => reject(new Error(`resource server exited with ${code}`)))
  })
  return `http://127.0.0.1:${port}`
}


async function post (url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
}

async function signIn (base: string, username?: string, headers: Record<string, string> = {}) {
  const name = username ?? `e2e${Math.random().toString(36).slice(2, 10)}`
  if (username === undefined) {
    const registered = await post(`${base}/auth/register`, { username: name, password: PASSWORD })
    if (registered.status !== 201) throw new Error(`register: ${registered.status}`)
  }
  const response = await post(`${base}/auth/login`, { username: name, password: PASSWORD }, headers)
  if (response.status !== 200) throw new Error(`login: ${response.status}`)
  return { username: name, ...(await response.json() as { accessToken: string, refreshToken: string, user: { id: string } }) }
}

const orders = async (rs: string, accessToken: string) => {
  const response = await fetch(`${rs}/orders`, { headers: { authorization: `Bearer ${accessToken}` } })
  return { status: response.status, code: (await response.json() as { code?: string }).code }
}

/** ms from now until the resource server refuses the token as revoked (-1 past the limit). */
async function msUntilRefused (rs: string, accessToken: string, since: number, limitMs = 5000): Promise<number> {
  while (Date.now() - since < limitMs) {
    const { status, code } = await orders(rs, accessToken)
    if (status === 401 && code === 'AUTH_TOKEN_REVOKED') return Date.now() - since
    await sleep(5)
  }
  return -1
}

ensureBuilt()

for (const database of testDatabases()) {
  t.test(`a resource server process refuses what the auth server revoked (${database})`, async (t) => {
    const port = await freePort()
    const auth = `http://127.0.0.1:${port}`
    const databaseUrl = await freshDatabaseUrl(t, database)
    await startAuthServer(t, databaseUrl, auth)
    const feedRelay = await relay(port)
    t.teardown(feedRelay.close)
    const rs = await startResourceServer(t, auth, `http://127.0.0.1:${feedRelay.port}/oauth/revocations`)
    const lags: Record<string, number> = {}

    const measure = async (name: string, token: string, act: () => Promise<Response>) => {
      t.equal((await orders(rs, token)).status, 200, `${name}: accepted before`)
      const response = await act()
      t.ok(response.ok, `${name}: ${response.status} at the auth server`)
      const lag = await msUntilRefused(rs, token, Date.now())
      lags[name] = lag
      t.ok(lag >= 0 && lag <= 1000, `${name}: refused by the resource server after ${lag} ms`)
    }

    const a = await signIn(auth)
    await measure('logout', a.accessToken, () => post(`${auth}/auth/logout`, { refreshToken: a.refreshToken }))

    const b = await signIn(auth)
    const bOther = await signIn(auth, b.username)
    await measure('password change', bOther.accessToken, () => post(`${auth}/auth/password`,
      { currentPassword: PASSWORD, newPassword: 'a different passphrase' }, { authorization: `Bearer ${b.accessToken}` }))

    const c = await signIn(auth)
    const cOther = await signIn(auth, c.username)
    const sessions = await (await fetch(`${auth}/auth/sessions`, { headers: { authorization: `Bearer ${c.accessToken}` } })).json() as { sessions: Array<{ id: string, current: boolean }> }
    const victim = sessions.sessions.find((session) => !session.current)!
    await measure('session deletion', cOther.accessToken, () => fetch(`${auth}/auth/sessions/${victim.id}`,
      { method: 'DELETE', headers: { authorization: `Bearer ${c.accessToken}` } }))
    t.equal((await orders(rs, c.accessToken)).status, 200, 'the deleting session itself still works')

    const d = await signIn(auth)
    const rotated = await post(`${auth}/auth/refresh`, { refreshToken: d.refreshToken })
    const { accessToken: dCurrent } = await rotated.json() as { accessToken: string }
    await measure('refresh-token reuse', dCurrent, async () => {
      const reuse = await post(`${auth}/auth/refresh`, { refreshToken: d.refreshToken })
      t.equal(reuse.status, 401, 'the reuse is refused')
      return new Response(null, { status: 200 })
    })

    // A DPoP-bound session (logged in with a proof): the resource server process takes its token
    // only with a proof by the key, never as Bearer, and refuses it once the session is logged out.
    const key = await proofKey('ES256')
    const e = await signIn(auth, undefined, { dpop: await proof(key, { htm: 'POST', htu: `${auth}/auth/login` }) })
    const withProof = async () => {
      const response = await fetch(`${rs}/orders`, { headers: { authorization: `DPoP ${e.accessToken}`, dpop: await proof(key, { htm: 'GET', htu: `${rs}/orders`, accessToken: e.accessToken }) } })
      return { status: response.status, code: (await response.json() as { code?: string }).code }
    }
    t.equal((await withProof()).status, 200, 'DPoP-bound token with its proof: accepted by the resource server')
    t.match(await orders(rs, e.accessToken), { status: 401, code: 'AUTH_DPOP_INVALID' }, 'the bound token as Bearer: refused')
    t.equal((await post(`${auth}/auth/logout`, { refreshToken: e.refreshToken })).status, 204)
    const boundSince = Date.now()
    let bound = await withProof()
    while (bound.code !== 'AUTH_TOKEN_REVOKED' && Date.now() - boundSince < 5000) { await sleep(5); bound = await withProof() }
    lags['DPoP-bound logout'] = Date.now() - boundSince
    t.equal(bound.code, 'AUTH_TOKEN_REVOKED', `the bound token, logged out, refused after ${lags['DPoP-bound logout']} ms`)

    // Cut the feed connection while revocations happen; after it comes back nothing is missed.
    const users = await Promise.all(Array.from({ length: 6 }, async () => signIn(auth)))
    for (const user of users) t.equal((await orders(rs, user.accessToken)).status, 200)
    const logout = (user: typeof users[number]) => post(`${auth}/auth/logout`, { refreshToken: user.refreshToken })
    await Promise.all([logout(users[0]!), feedRelay.cut(), logout(users[1]!)])
    await logout(users[2]!)
    await logout(users[3]!)
    await sleep(300)
    await feedRelay.restore()
    await Promise.all([logout(users[4]!), logout(users[5]!)])
    const since = Date.now()
    for (const [index, user] of users.entries()) {
      const lag = await msUntilRefused(rs, user.accessToken, since, 10_000)
      t.ok(lag >= 0, `token ${index + 1} of the cut window refused (${lag} ms after the last logout)`)
    }
    t.comment(`revocation lag at the resource server (ms): ${JSON.stringify(lags)}`)
    console.log(`# ${database}: revocation lag at the resource server (ms): ${JSON.stringify(lags)}`)
  })
}

const pgUrl = process.env.TEST_DATABASE_URL
const redisUrl = process.env.TEST_REDIS_URL
if (pgUrl !== undefined && redisUrl !== undefined) {
  t.test('two auth-server instances on PostgreSQL + Redis: revoked on the other instance', async (t) => {
    const databaseUrl = await freshDatabaseUrl(t, 'postgresql')
    const portA = await freePort()
    const portB = await freePort()
    const a = `http://127.0.0.1:${portA}`
    const b = `http://127.0.0.1:${portB}`
    // A slow poll: the doorbell, not polling, carries the revocation from B to A.
    const env = { REDIS_URL: redisUrl, REVOCATION_POLL_INTERVAL_MS: '10000' }
    // One public name for both, as behind a load balancer.
    await startAuthServer(t, databaseUrl, a, a, env)
    await startAuthServer(t, databaseUrl, b, a, env)
    const rs = await startResourceServer(t, a)
    const lags: number[] = []
    for (let round = 0; round < 3; round++) {
      const user = await signIn(a)
      t.equal((await orders(rs, user.accessToken)).status, 200)
      const out = await post(`${b}/auth/logout`, { refreshToken: user.refreshToken })
      t.equal(out.status, 204, 'logged out on instance B')
      const lag = await msUntilRefused(rs, user.accessToken, Date.now())
      lags.push(lag)
      t.ok(lag >= 0 && lag <= 1000, `the resource server following A refused it after ${lag} ms`)
    }
    const user = await signIn(b)
    const changed = await post(`${b}/auth/password`, { currentPassword: PASSWORD, newPassword: 'a different passphrase' }, { authorization: `Bearer ${user.accessToken}` })
    t.equal(changed.status, 200)
    const lag = await msUntilRefused(rs, user.accessToken, Date.now())
    t.ok(lag >= 0 && lag <= 1000, `password change on B: refused after ${lag} ms`)
    console.log(`# two instances: logout on B → resource server following A (ms): ${JSON.stringify(lags)}; password change: ${lag}`)
  })
}
