// A database that is gone or unusable answers 503 SERVICE_UNAVAILABLE on every route that needs it,
// never 500, and a login whose check the outage interrupted counts for nothing. Each fault is caused
// for real: PostgreSQL refusing connections, backends terminated mid-query, statements timing out
// behind a lock, too many connections, a read-only database, a connection that cannot be opened
// (nothing listening, or a server that never answers); SQLite's write lock held by another
// connection past the busy timeout, a read-only connection, a full disk (a small tmpfs: needs root).
import { randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import pg from 'pg'
import t, { type Test } from 'tap'
import { buildApp } from '../../src/app.js'
import { PASSWORD, bearer, freshDatabaseUrl, json, login, register, testConfig } from '../helpers.js'

function assertUnavailable (t: Test, response: LightMyRequestResponse, what: string) {
  t.equal(response.statusCode, 503, `${what}: 503 (${response.body.slice(0, 100)})`)
  let body: Record<string, unknown> = {}
  try { body = json(response) } catch {}
  t.equal(body.code, 'SERVICE_UNAVAILABLE', `${what}: SERVICE_UNAVAILABLE`)
  t.ok(response.headers['retry-after'] !== undefined, `${what}: Retry-After`)
}

async function startApp (t: Test, databaseUrl: string): Promise<FastifyInstance> {
  const app = await buildApp(testConfig(databaseUrl))
  t.teardown(() => app.close())
  return app
}

/** An account with a live session whose access token this instance already knows (used once). */
async function prepared (app: FastifyInstance) {
  const account = await register(app)
  const tokens = await login(app, account.username)
  const me = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(tokens.accessToken) })
  if (me.statusCode !== 200) throw new Error(`me failed: ${me.statusCode}`)
  // A second login whose access token this instance has never seen: its first use needs the database.
  const unseen = await login(app, account.username)
  return { ...account, tokens, unseen }
}
type Prepared = Awaited<ReturnType<typeof prepared>>

/** The routes that write. */
function writes (p: Prepared) {
  return {
    register: { method: 'POST' as const, url: '/auth/register', payload: { username: `n${randomBytes(4).toString('hex')}`, password: PASSWORD } },
    login: { method: 'POST' as const, url: '/auth/login', payload: { username: p.username, password: PASSWORD } },
    refresh: { method: 'POST' as const, url: '/auth/refresh', payload: { refreshToken: p.tokens.refreshToken } },
    'logout-all': { method: 'POST' as const, url: '/auth/logout-all', headers: bearer(p.tokens.accessToken) },
    'create order': { method: 'POST' as const, url: '/orders', headers: bearer(p.tokens.accessToken), payload: { item: 'book', quantity: 1 } },
    'delete session': { method: 'DELETE' as const, url: '/auth/sessions/00000000-0000-4000-8000-000000000000', headers: bearer(p.tokens.accessToken) }
  }
}
/** The routes that only read. */
function reads (p: Prepared) {
  return {
    orders: { method: 'GET' as const, url: '/orders', headers: bearer(p.tokens.accessToken) },
    sessions: { method: 'GET' as const, url: '/auth/sessions', headers: bearer(p.tokens.accessToken) },
    'first use of a token': { method: 'GET' as const, url: '/auth/me', headers: bearer(p.unseen.accessToken) },
    ready: { method: 'GET' as const, url: '/ready' }
  }
}

async function assertRoutes (t: Test, app: FastifyInstance, routes: Record<string, InjectOptions>, expect: 'unavailable' | 'working') {
  for (const [what, request] of Object.entries(routes)) {
    const response = await app.inject(request)
    if (expect === 'unavailable') assertUnavailable(t, response, what)
    else t.ok(response.statusCode < 500, `${what} works (${response.statusCode})`)
  }
}

/** More logins than LOGIN_MAX_FAILURES during the outage; after it the right password works at once. */
async function assertOutageLoginsDoNotCount (t: Test, app: FastifyInstance, p: Prepared, restore: () => Promise<void>) {
  for (let i = 0; i < 6; i++) {
    assertUnavailable(t, await app.inject({ method: 'POST', url: '/auth/login', payload: { username: p.username, password: PASSWORD } }), `login ${i + 1} during the outage`)
  }
  await restore()
  // Until the instance has a working connection again (a terminated one may still be in its pool).
  for (let i = 0; i < 100 && (await app.inject({ method: 'GET', url: '/ready' })).statusCode !== 200; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  const after = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: p.username, password: PASSWORD } })
  t.equal(after.statusCode, 200, 'after the outage the right password logs in: interrupted checks were not failures')
}

// ---------------------------------------------------------------- PostgreSQL

const adminUrl = process.env.TEST_DATABASE_URL
if (adminUrl) {
  /** A scratch database owned by a role of its own (not a superuser, so connection limits apply to it). */
  async function scratchDatabase (t: Test) {
    const admin = new pg.Client({ connectionString: adminUrl })
    await admin.connect()
    const name = `races_${randomBytes(5).toString('hex')}`
    await admin.query(`CREATE ROLE ${name} LOGIN`)
    await admin.query(`CREATE DATABASE ${name} OWNER ${name}`)
    const base = new URL(adminUrl!)
    const url = new URL(`postgresql://${name}@${base.host}/${name}`)
    url.searchParams.set('schema', 'public')
    const terminate = async () => {
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name])
    }
    /** A connection of the superuser to the scratch database itself (to take locks). */
    const superuserThere = async () => {
      const target = new URL(adminUrl!)
      target.pathname = `/${name}`
      const client = new pg.Client({ connectionString: target.toString() })
      await client.connect()
      t.teardown(() => client.end().catch(() => {}))
      return client
    }
    t.teardown(async () => {
      await admin.query(`ALTER DATABASE ${name} ALLOW_CONNECTIONS true`).catch(() => {})
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      await admin.query(`DROP ROLE IF EXISTS ${name}`)
      await admin.end()
    })
    return { name, url: url.toString(), admin, terminate, superuserThere }
  }

  /** Waits until one of the app's backends waits on a lock. */
  async function someoneWaitsOnALock (admin: pg.Client, name: string) {
    for (let i = 0; i < 200; i++) {
      const { rows } = await admin.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [name])
      if (rows[0].n > 0) return
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    throw new Error('no backend ever waited on the lock')
  }

  t.test('PostgreSQL refusing connections (ALLOW_CONNECTIONS false, backends terminated): 503 everywhere, and no lockout after', async (t) => {
    const db = await scratchDatabase(t)
    const app = await startApp(t, db.url)
    const p = await prepared(app)
    await db.admin.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`)
    await db.terminate()
    const known = await app.inject({ method: 'GET', url: '/auth/me', headers: bearer(p.tokens.accessToken) })
    t.equal(known.statusCode, 200, 'a token this instance knows is checked from memory, with no database round trip')
    await assertRoutes(t, app, { ...writes(p), ...reads(p) }, 'unavailable')
    await assertOutageLoginsDoNotCount(t, app, p, async () => { await db.admin.query(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`) })
    await assertRoutes(t, app, reads(p), 'working')
  })

  t.test('PostgreSQL terminating the backend under a running query: 503, and the attempt does not count', async (t) => {
    const db = await scratchDatabase(t)
    const app = await startApp(t, db.url)
    const p = await prepared(app)
    const locker = await db.superuserThere()
    for (let round = 0; round < 6; round++) {
      await locker.query('BEGIN')
      await locker.query('LOCK TABLE "User" IN ACCESS EXCLUSIVE MODE')
      const pending = app.inject({ method: 'POST', url: '/auth/login', payload: { username: p.username, password: PASSWORD } })
      await someoneWaitsOnALock(db.admin, db.name)
      await db.admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'", [db.name])
      assertUnavailable(t, await pending, `login ${round + 1} whose backend was terminated`)
      await locker.query('ROLLBACK')
    }
    t.equal((await app.inject({ method: 'POST', url: '/auth/login', payload: { username: p.username, password: PASSWORD } })).statusCode, 200, 'no lockout')
  })

  t.test('PostgreSQL statements timing out behind a lock: 503', async (t) => {
    const db = await scratchDatabase(t)
    const app = await startApp(t, db.url)
    const p = await prepared(app)
    await db.admin.query(`ALTER ROLE ${db.name} SET statement_timeout = '300ms'`)
    await db.terminate() // the pool reconnects with the setting
    const locker = await db.superuserThere()
    await locker.query('BEGIN')
    await locker.query('LOCK TABLE "User", "Session", "RefreshToken", "Order" IN ACCESS EXCLUSIVE MODE')
    await assertRoutes(t, app, { login: writes(p).login, refresh: writes(p).refresh, orders: reads(p).orders, 'first use of a token': reads(p)['first use of a token'] }, 'unavailable')
    await assertOutageLoginsDoNotCount(t, app, p, async () => { await locker.query('ROLLBACK') })
  })

  t.test('PostgreSQL with too many connections: 503', async (t) => {
    const db = await scratchDatabase(t)
    const app = await startApp(t, db.url)
    const p = await prepared(app)
    await db.admin.query(`ALTER DATABASE ${db.name} CONNECTION LIMIT 0`)
    await db.terminate()
    await assertRoutes(t, app, { ...writes(p), ...reads(p) }, 'unavailable')
    await assertOutageLoginsDoNotCount(t, app, p, async () => { await db.admin.query(`ALTER DATABASE ${db.name} CONNECTION LIMIT -1`) })
  })

  t.test('PostgreSQL read-only (default_transaction_read_only): writes 503, reads still work', async (t) => {
    const db = await scratchDatabase(t)
    const app = await startApp(t, db.url)
    const p = await prepared(app)
    await db.admin.query(`ALTER DATABASE ${db.name} SET default_transaction_read_only = on`)
    await db.terminate()
    await assertRoutes(t, app, writes(p), 'unavailable')
    await assertRoutes(t, app, reads(p), 'working')
    await assertOutageLoginsDoNotCount(t, app, p, async () => {
      await db.admin.query(`ALTER DATABASE ${db.name} RESET default_transaction_read_only`)
      await db.terminate()
    })
  })

  /** A TCP proxy to PostgreSQL that can stop forwarding: refuse (closed), or accept and never answer (hang). */
  async function proxyTo (t: Test, target: URL) {
    let mode: 'forward' | 'hang' = 'forward'
    const sockets = new Set<net.Socket>()
    const listen = async (port = 0) => {
      const server = net.createServer((client) => {
        sockets.add(client)
        client.on('close', () => sockets.delete(client))
        client.on('error', () => {})
        if (mode === 'hang') return
        const upstream = net.connect(Number(target.port || 5432), target.hostname)
        sockets.add(upstream)
        upstream.on('close', () => { sockets.delete(upstream); client.destroy() })
        upstream.on('error', () => client.destroy())
        client.on('close', () => upstream.destroy())
        client.pipe(upstream).pipe(client)
      })
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
      return server
    }
    let server = await listen()
    const port = (server.address() as net.AddressInfo).port
    const cut = () => { for (const socket of sockets) socket.destroy() }
    t.teardown(() => { cut(); server.close() })
    return {
      port,
      /** Nothing listens any more: connections are refused. */
      async refuse () { const closed = new Promise((resolve) => server.close(resolve)); cut(); await closed },
      /** Connections are accepted and never answered. */
      async hang () { mode = 'hang'; cut(); if (!server.listening) server = await listen(port) },
      async restore () { mode = 'forward'; if (!server.listening) server = await listen(port) }
    }
  }

  t.test('PostgreSQL unreachable (nothing listening) and hung (a connection never answered): 503', async (t) => {
    const url = new URL(await freshDatabaseUrl(t, 'postgresql'))
    const proxy = await proxyTo(t, new URL(url))
    url.host = `127.0.0.1:${proxy.port}`
    const app = await startApp(t, url.toString())
    const p = await prepared(app)
    await proxy.refuse()
    await assertRoutes(t, app, { login: writes(p).login, refresh: writes(p).refresh, orders: reads(p).orders, ready: reads(p).ready }, 'unavailable')
    await proxy.hang()
    // Each request waits for the connect timeout (5 s): two of them at once.
    const [hungLogin, hungOrders] = await Promise.all([app.inject(writes(p).login), app.inject(reads(p).orders)])
    assertUnavailable(t, hungLogin, 'login while the connection hangs')
    assertUnavailable(t, hungOrders, 'orders while the connection hangs')
    await assertOutageLoginsDoNotCount(t, app, p, async () => proxy.restore())
    await assertRoutes(t, app, reads(p), 'working')
  })
}

// ---------------------------------------------------------------- SQLite

t.test('SQLite write lock held by another connection past the busy timeout: 503, and the attempt does not count', async (t) => {
  const url = await freshDatabaseUrl(t, 'sqlite')
  const app = await startApp(t, url)
  const p = await prepared(app)
  const other = new Database(url.slice('file:'.length))
  t.teardown(() => other.close())
  other.exec('BEGIN IMMEDIATE')
  // Each write waits the busy timeout (5 s) first; the app runs them one after another.
  assertUnavailable(t, await app.inject(writes(p).login), 'login')
  assertUnavailable(t, await app.inject(writes(p).refresh), 'refresh')
  other.exec('ROLLBACK')
  await assertRoutes(t, app, reads(p), 'working')
  t.equal((await app.inject(writes(p).login)).statusCode, 200)
})

t.test('SQLite connection read-only (query_only): writes 503, reads still work', async (t) => {
  const url = await freshDatabaseUrl(t, 'sqlite')
  const app = await startApp(t, url)
  const p = await prepared(app)
  await app.db.$executeRawUnsafe('PRAGMA query_only = ON')
  await assertRoutes(t, app, writes(p), 'unavailable')
  await assertRoutes(t, app, reads(p), 'working')
  await assertOutageLoginsDoNotCount(t, app, p, async () => { await app.db.$executeRawUnsafe('PRAGMA query_only = OFF') })
})

t.test('SQLite on a full disk (a small tmpfs filled up): writes 503, reads still work', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-full-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m', 'tmpfs', dir])
  t.teardown(() => { execFileSync('umount', ['-l', dir]); rmSync(dir, { recursive: true, force: true }) })
  const app = await startApp(t, `file:${join(dir, 'auth.db')}`)
  const p = await prepared(app)
  // Fill what is left of the disk.
  const filler = openSync(join(dir, 'filler'), 'w')
  const chunk = Buffer.alloc(64 * 1024)
  try { for (;;) writeSync(filler, chunk) } catch {}
  closeSync(filler)
  // (Deleting a session that does not exist writes nothing, so it needs no space.)
  const { 'delete session': _, ...needSpace } = writes(p)
  await assertRoutes(t, app, needSpace, 'unavailable')
  await assertRoutes(t, app, reads(p), 'working')
  await assertOutageLoginsDoNotCount(t, app, p, async () => { unlinkSync(join(dir, 'filler')) })
  await assertRoutes(t, app, { 'create order': writes(p)['create order'] }, 'working')
})
