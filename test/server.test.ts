// The real entry point as a process: it starts on a fresh data folder, refuses a bad configuration
// with a message naming the variable, and on SIGTERM lets an in-flight request finish before exiting.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { TEST_SECRET } from './helpers.js'

const entry = new URL('../src/server.ts', import.meta.url).pathname
// Run the sources with the TypeScript loader this test itself runs under.
const loader = process.execArgv.filter((arg) => arg.includes('@tapjs/typescript'))

function dataDir (t: { teardown: (fn: () => void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'auth-server-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a bad value stops the start, naming the variable', async (t) => {
  t.ok(loader.length > 0, 'setup: the TypeScript loader is known')
  const dir = dataDir(t)
  const result = spawnSync(process.execPath, [...loader, entry], {
    cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, PORT: 'eighty', DATABASE_URL: `file:${dir}/auth.db` }
  })
  t.not(result.status, 0)
  t.match(result.stderr, /PORT/)
})

t.test('production without JWT_SECRET refuses to start', async (t) => {
  const dir = dataDir(t)
  const result = spawnSync(process.execPath, [...loader, entry], {
    cwd: dir, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NODE_ENV: 'production', JWT_SECRET: '', DATABASE_URL: `file:${dir}/auth.db` }
  })
  t.not(result.status, 0)
  t.match(result.stderr, /JWT_SECRET is required/)
})

t.test('SIGTERM: the in-flight login completes, then the process exits cleanly', async (t) => {
  const dir = dataDir(t)
  const port = 30_000 + Math.floor(Math.random() * 20_000)
  const server = spawn(process.execPath, [...loader, entry], {
    cwd: dir,
    env: { ...process.env, PORT: String(port), DATABASE_URL: `file:${dir}/auth.db`, JWT_SECRET: TEST_SECRET, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let log = ''
  server.stdout.on('data', (chunk) => { log += chunk })
  server.stderr.on('data', (chunk) => { log += chunk })
  const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)))
  t.teardown(() => { server.kill('SIGKILL') })

  const base = `http://127.0.0.1:${port}`
  // A start-up budget, not a speed check: the TypeScript loader type-checks each source file, which
  // takes far longer on a loaded machine than the built server does.
  for (let i = 0; i < 900 && !log.includes('Server listening'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  t.match(log, /Server listening/, 'the server started')
  const credentials = { username: 'graceful', password: 'correct horse battery staple' }
  const registered = await fetch(`${base}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials) })
  t.equal(registered.status, 201)

  // A login spends tens of milliseconds hashing: it is still in flight when the signal arrives.
  const inFlight = fetch(`${base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(credentials) })
  // The signal goes once the server has the request (a loaded machine may take longer to deliver it).
  for (let i = 0; i < 600 && !/"url":"\/auth\/login"/.test(log); i++) await new Promise((resolve) => setTimeout(resolve, 5))
  server.kill('SIGTERM')
  const response = await inFlight
  t.equal(response.status, 200, 'the in-flight request finished')
  t.type((await response.json() as { accessToken?: unknown }).accessToken, 'string')
  const code = await exited
  t.equal(code, 0, 'exit code 0')
  t.match(log, /shutting down/)
})
