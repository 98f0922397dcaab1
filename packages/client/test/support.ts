// What the SDK tests share: the real server (buildApp, listening on a free port on 127.0.0.1, on
// SQLite and, with TEST_DATABASE_URL, PostgreSQL), a count of refresh requests as they reach its
// socket, and a storage adapter kept in memory (the shape of expo-secure-store).
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../../src/app.js'
import { type TestDatabase, PASSWORD, freshDatabaseUrl, testConfig, testDatabases } from '../../../test/helpers.js'
import type { StorageAdapter } from '../src/index.js'

export { PASSWORD, testDatabases }
export type { TestDatabase }

interface Teardown { teardown: (fn: () => unknown) => void }

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

export interface RunningServer {
  app: FastifyInstance
  baseUrl: string
  /** POST /auth/refresh requests that reached the server's socket. */
  refreshes: () => number
  resetRefreshes: () => void
}

/** The server on a free port; its own origin is allowed for the cookie CSRF check and CORS. */
export async function startServer (t: Teardown, database: TestDatabase, env: Record<string, string> = {}, extend?: (app: FastifyInstance) => void): Promise<RunningServer> {
  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  const config = testConfig(await freshDatabaseUrl(t, database), { ALLOWED_ORIGINS: baseUrl, PUBLIC_URL: baseUrl, ...env })
  const app = await buildApp(config)
  extend?.(app)
  let refreshes = 0
  app.server.on('request', (request) => {
    if (request.method === 'POST' && request.url?.split('?')[0] === '/auth/refresh') refreshes++
  })
  await app.listen({ host: '127.0.0.1', port })
  t.teardown(() => app.close())
  return { app, baseUrl, refreshes: () => refreshes, resetRefreshes: () => { refreshes = 0 } }
}

export function memoryStorage (): StorageAdapter & { values: Map<string, string> } {
  const values = new Map<string, string>()
  return {
    values,
    async get (key) { return values.get(key) ?? null },
    async set (key, value) { values.set(key, value) },
    async delete (key) { values.delete(key) }
  }
}

export const uniqueName = (prefix = 'sdk') => `${prefix}${randomBytes(5).toString('hex')}`

export async function registerUser (baseUrl: string, username = uniqueName(), password = PASSWORD) {
  const response = await fetch(`${baseUrl}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) })
  if (response.status !== 201) throw new Error(`register failed: ${response.status}`)
  return { username, password }
}

/** Waits until the server refuses this access token as expired (real time: the server's own clock). */
export async function untilExpired (baseUrl: string, accessToken: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const response = await fetch(`${baseUrl}/auth/me`, { headers: { authorization: `Bearer ${accessToken}` } })
    if (response.status === 401 && (await response.json()).code === 'AUTH_TOKEN_EXPIRED') return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error('the access token never expired')
}

/**
 * A fetch for the SDK that records the access tokens it sends and the token answers it gets, so a
 * test can name them. It passes every request to the real server unchanged.
 */
export function recordingFetch () {
  const sentTokens: string[] = []
  const refreshAnswers: Array<{ accessToken: string, refreshToken?: string }> = []
  const impl: typeof fetch = async (input, init) => {
    const authorization = new Headers(init?.headers).get('authorization')
    if (authorization !== null) sentTokens.push(authorization.replace(/^(Bearer|DPoP) /, ''))
    const response = await fetch(input, init)
    if (String(input instanceof Request ? input.url : input).endsWith('/auth/refresh') && response.ok) refreshAnswers.push(await response.clone().json())
    return response
  }
  return { impl, sentTokens, refreshAnswers, lastToken: () => sentTokens[sentTokens.length - 1]! }
}
