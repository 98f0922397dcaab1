// The operator CLI as operators run it: the built entry (dist/src/cli.js) as a process, against the
// same database as a running app instance (SQLite file, PostgreSQL schema). Checks exit codes,
// --json shapes, confirmation (--yes, a refused prompt without a terminal), passwords from stdin, and
// that a running instance refuses a disabled, reset or deleted user's tokens within its poll interval.
import { execFile, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { TEST_SECRET, bearer, json, testApp, testDatabases } from './helpers.js'

const root = new URL('..', import.meta.url).pathname
const entry = join(root, 'dist', 'src', 'cli.js')
const PASSWORD = 'correct horse battery staple'

// Each CLI run is a Node process that loads Prisma: on a busy 2-core machine that adds up.
t.setTimeout(900_000)

/** The newest modification time of the sources the build is made from. */
function newestSource (dir: string): number {
  return Math.max(0, ...readdirSync(dir, { withFileTypes: true }).map((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs
  }))
}

t.before(() => {
  // The test runs what `npx auth-server` runs: the build, made again when a source is newer.
  let built = 0
  try { built = statSync(entry).mtimeMs } catch {}
  if (built > newestSource(join(root, 'src'))) return
  const build = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.json')], { encoding: 'utf8', timeout: 300_000 })
  if (build.status !== 0) throw new Error(`build failed: ${build.stdout}${build.stderr}`)
})

interface Run { code: number | null, stdout: string, stderr: string }

function cliFor (t: { teardown: (fn: () => void) => void }, databaseUrl: string) {
  const cwd = mkdtempSync(join(tmpdir(), 'auth-cli-'))
  t.teardown(() => rmSync(cwd, { recursive: true, force: true }))
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', DATABASE_URL: databaseUrl, JWT_SECRET: TEST_SECRET, PASSWORD_HASH_CONCURRENCY: '1' }
  return async (args: string[], input = ''): Promise<Run> => new Promise((resolve) => {
    const child = execFile(process.execPath, [entry, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr })
    })
    child.stdin?.end(input)
  })
}

/** Waits (up to a generous deadline, no timing asserted) until the check holds. */
async function eventually (check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return true
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return false
}

async function login (app: FastifyInstance, username: string, password = PASSWORD) {
  return app.inject({ method: 'POST', url: '/auth/login', payload: { username, password } })
}
async function me (app: FastifyInstance, accessToken: string) {
  return app.inject({ method: 'GET', url: '/auth/me', headers: bearer(accessToken) })
}
const refusedOn = (app: FastifyInstance, accessToken: string) => async () => {
  const response = await me(app, accessToken)
  return response.statusCode === 401 && json(response).code === 'AUTH_TOKEN_REVOKED'
}

for (const database of testDatabases()) {
  t.test(`users: create, disable, enable, reset-password, delete, with a running instance (${database})`, async (t) => {
    // The instance only learns of the CLI's changes by polling the revocation log (no Redis here).
    const app = await testApp(t, { database, env: { REVOCATION_POLL_INTERVAL_MS: '100' } })
    const cli = cliFor(t, app.config.database.url)

    const created = await cli(['users', 'create', 'alice', '--json'], `${PASSWORD}\n`)
    t.equal(created.code, 0, `create: exit 0 ${created.stderr}`)
    const { user } = JSON.parse(created.stdout)
    t.same(Object.keys(user).sort(), ['id', 'username'])
    t.equal(user.username, 'alice')
    t.equal((await login(app, 'alice')).statusCode, 200, 'the password from stdin (its newline dropped) works')

    const tokens = json(await login(app, 'alice'))
    t.equal((await me(app, tokens.accessToken)).statusCode, 200)

    // Disable: refused without --yes when there is no terminal to ask on; nothing changes.
    const unconfirmed = await cli(['users', 'disable', 'alice'])
    t.equal(unconfirmed.code, 2, 'no --yes and no terminal: refused')
    t.match(unconfirmed.stderr, /--yes/)
    t.equal((await app.db.user.findUniqueOrThrow({ where: { usernameKey: 'alice' } })).disabled, false, 'nothing changed')
    const disabled = await cli(['users', 'disable', 'alice', '--yes', '--json'])
    t.equal(disabled.code, 0, `disable: exit 0 ${disabled.stderr}`)
    t.same(JSON.parse(disabled.stdout), { user: { id: user.id, username: 'alice', disabled: true }, changed: true })
    t.ok(await eventually(refusedOn(app, tokens.accessToken)), "the running instance refuses the disabled user's access token")
    t.equal((await login(app, 'alice')).statusCode, 401, 'and their logins')
    t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode, 401, 'and their refreshes')
    const enabled = await cli(['users', 'enable', 'alice', '--json'])
    t.equal(enabled.code, 0)
    t.equal(JSON.parse(enabled.stdout).user.disabled, false)
    t.equal((await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: tokens.refreshToken } })).statusCode, 401,
      're-enabling does not bring the old session back')
    const fresh = json(await login(app, 'alice'))
    t.equal((await me(app, fresh.accessToken)).statusCode, 200, 'new logins work again')

    // Reset the password from stdin: every session ends, on the running instance too.
    const reset = await cli(['users', 'reset-password', 'alice', '--yes', '--json'], 'another long passphrase\n')
    t.equal(reset.code, 0, `reset: exit 0 ${reset.stderr}`)
    t.match(JSON.parse(reset.stdout), { user: { id: user.id, username: 'alice' }, sessionsEnded: 1 })
    t.ok(await eventually(refusedOn(app, fresh.accessToken)), 'the running instance refuses tokens from before the reset')
    t.equal((await login(app, 'alice')).statusCode, 401, 'the old password is refused')
    const afterReset = json(await login(app, 'alice', 'another long passphrase'))
    t.equal((await me(app, afterReset.accessToken)).statusCode, 200, 'the new one works')

    const unknown = await cli(['users', 'disable', 'nobody', '--yes', '--json'])
    t.equal(unknown.code, 1, 'an unknown user fails')
    t.same(JSON.parse(unknown.stderr), { error: { code: 'NOT_FOUND', message: 'No user named "nobody"' } })
    t.equal(unknown.stdout, '')

    // Delete: confirmation, then the trigger's revocation reaches the running instance.
    const deleted = await cli(['users', 'delete', 'alice', '--yes', '--json'])
    t.equal(deleted.code, 0)
    t.same(JSON.parse(deleted.stdout), { user: { id: user.id, username: 'alice' }, deleted: true })
    t.ok(await eventually(refusedOn(app, afterReset.accessToken)), "the running instance refuses a deleted user's tokens")
  })

  t.test(`sessions list and revoke (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { REVOCATION_POLL_INTERVAL_MS: '100' } })
    const cli = cliFor(t, app.config.database.url)
    t.equal((await cli(['users', 'create', 'carol'], PASSWORD)).code, 0)
    const one = json(await login(app, 'carol'))
    const two = json(await login(app, 'carol'))
    await app.inject({ method: 'POST', url: '/auth/refresh', payload: { refreshToken: two.refreshToken } })

    const listed = await cli(['sessions', 'list', 'carol', '--json'])
    t.equal(listed.code, 0)
    const { sessions } = JSON.parse(listed.stdout)
    t.equal(sessions.length, 2)
    t.same(Object.keys(sessions[0]).sort(), ['client', 'createdAt', 'expiresAt', 'id', 'ip', 'lastUsedAt', 'refreshCount', 'userAgent'])
    t.same(sessions.map((session: { refreshCount: number }) => session.refreshCount).sort(), [0, 1])
    const oneId = JSON.parse(Buffer.from(one.accessToken.split('.')[1], 'base64url').toString()).sid

    const revoked = await cli(['sessions', 'revoke', oneId, '--yes', '--json'])
    t.equal(revoked.code, 0)
    t.same(JSON.parse(revoked.stdout), { session: { id: oneId }, revoked: true })
    t.ok(await eventually(refusedOn(app, one.accessToken)), 'the running instance refuses the revoked session')
    t.equal((await me(app, two.accessToken)).statusCode, 200, 'the other session lives')
    const history = await app.db.sessionEvent.findMany({ where: { sessionId: oneId }, orderBy: { id: 'asc' } })
    t.same(history.map((event) => [event.type, event.reason]), [['login', null], ['revoked', 'operator']], 'the history says an operator ended it')

    const all = await cli(['sessions', 'revoke', '--user', 'carol', '--yes', '--json'])
    t.equal(all.code, 0)
    t.match(JSON.parse(all.stdout), { user: { username: 'carol' }, sessionsEnded: 1 })
    t.ok(await eventually(refusedOn(app, two.accessToken)), 'every session of the user ends, on the running instance too')
    t.equal(await app.db.session.count({ where: { revokedAt: null } }), 0)
  })
}

t.test('db, tokens, keys, help and usage', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-cli-db-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const cli = cliFor(t, `file:${join(dir, 'auth.db')}`)

  const before = await cli(['db', 'status', '--json'])
  t.equal(before.code, 1, 'a database that is not up to date: status 1')
  const status = JSON.parse(before.stdout)
  t.equal(status.upToDate, false)
  t.same(status.applied, [])
  t.ok(status.pending.length >= 4)
  const migrated = await cli(['db', 'migrate', '--json'])
  t.equal(migrated.code, 0)
  t.same(JSON.parse(migrated.stdout).applied, status.pending)
  const after = await cli(['db', 'status', '--json'])
  t.equal(after.code, 0)
  t.match(JSON.parse(after.stdout), { upToDate: true, pending: [], applied: status.pending })

  const pruned = await cli(['tokens', 'prune', '--json'])
  t.equal(pruned.code, 0)
  t.same(Object.keys(JSON.parse(pruned.stdout)).sort(), ['eventsDeleted', 'sealsErased', 'sessionEventsDeleted', 'sessionsDeleted', 'sessionsExpired', 'tokensDeleted'])
  const prunedText = await cli(['tokens', 'prune'])
  t.match(prunedText.stdout, /Sessions deleted: 0/)
  t.match(prunedText.stderr, /sessions: 0\/0/, 'progress, without a terminal as plain lines')

  // Bad input and unknown names, with the API's rules and codes.
  t.equal((await cli(['users', 'create', 'erin', '--json'], PASSWORD)).code, 0)
  const taken = await cli(['users', 'create', 'ERIN', '--json'], PASSWORD)
  t.equal(taken.code, 1, 'a taken username (compared as logins compare it) fails')
  t.equal(JSON.parse(taken.stderr).error.code, 'AUTH_USERNAME_TAKEN')
  const badName = await cli(['users', 'create', 'a b'], PASSWORD)
  t.equal(badName.code, 2, 'a bad username is a usage error')
  t.match(badName.stderr, /username must not contain U\+0020/, 'the API\'s own rule, named')
  const weak = await cli(['users', 'reset-password', 'erin', '--yes', '--json'], 'short')
  t.equal(weak.code, 2, 'a weak password is a usage error')
  t.equal(JSON.parse(weak.stderr).error.code, 'AUTH_WEAK_PASSWORD')
  const listed = await cli(['users', 'list', '--json'])
  t.equal(listed.code, 0)
  const users = JSON.parse(listed.stdout).users
  t.equal(users.length, 1, 'nothing created by the failures')
  t.same(Object.keys(users[0]).sort(), ['createdAt', 'disabled', 'id', 'liveSessions', 'username'])
  t.match(users[0], { username: 'erin', disabled: false, liveSessions: 0 })
  const neither = await cli(['sessions', 'revoke', '--yes'])
  t.equal(neither.code, 2, 'sessions revoke with neither an id nor --user: usage')
  const noSession = await cli(['sessions', 'revoke', 'no-such-session', '--yes', '--json'])
  t.equal(noSession.code, 1, 'an unknown session fails')
  t.equal(JSON.parse(noSession.stderr).error.code, 'NOT_FOUND')

  const keys = await cli(['keys', 'generate', '--out', join(dir, 'keys'), '--json'])
  t.equal(keys.code, 0)
  t.match(JSON.parse(keys.stdout), { alg: 'EdDSA', kid: String, privateFile: join(dir, 'keys', 'jwt-private-key.pem') })
  t.equal((await cli(['keys', 'generate', '--out', join(dir, 'keys')])).code, 1, 'an existing key is never overwritten')
  t.equal((await cli(['keys', 'generate', '--type', 'rsa'])).code, 2, 'an unsupported type is a usage error')

  const help = await cli(['--help'])
  t.equal(help.code, 0)
  for (const command of ['users', 'sessions', 'tokens', 'keys', 'db']) t.match(help.stdout, command)
  for (const args of [['users', 'disable', '--help']]) {
    const shown = await cli(args)
    t.equal(shown.code, 0, `${args.join(' ')}: exit 0`)
    t.match(shown.stdout, /--yes/)
  }
  const unknownCommand = await cli(['users', 'lst', '--json'])
  t.equal(unknownCommand.code, 2, 'an unknown command is a usage error')
  t.equal(JSON.parse(unknownCommand.stderr).error.code, 'commander.unknownCommand')
  t.equal((await cli(['users', 'create'])).code, 2, 'a missing argument is a usage error')
})

t.test('on a terminal, destructive commands ask: no keeps, yes goes ahead', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'auth-cli-tty-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const databaseUrl = `file:${join(dir, 'auth.db')}`
  const cli = cliFor(t, databaseUrl)
  t.equal((await cli(['users', 'create', 'dave'], PASSWORD)).code, 0)
  // script(1) runs the CLI on a pseudo-terminal; the answer is typed once the question shows.
  const onTerminal = async (answer: string): Promise<{ code: number | null, output: string }> => new Promise((resolve) => {
    const command = [process.execPath, entry, 'users', 'delete', 'dave'].map((arg) => `'${arg}'`).join(' ')
    const child = spawn('script', ['-qec', command, '/dev/null'], {
      cwd: dir, env: { PATH: process.env.PATH ?? '', TERM: 'dumb', DATABASE_URL: databaseUrl, JWT_SECRET: TEST_SECRET }
    })
    let output = ''
    let answered = false
    child.stdout.on('data', (chunk) => {
      output += chunk
      if (!answered && output.includes('(y/N)')) {
        answered = true
        child.stdin.write(answer + '\r')
      }
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, output }) })
  })
  const users = () => {
    const db = new Database(join(dir, 'auth.db'), { readonly: true })
    try { return (db.prepare('SELECT COUNT(*) AS n FROM "User"').get() as { n: number }).n } finally { db.close() }
  }
  const declined = await onTerminal('n')
  t.match(declined.output, /Delete dave/, 'the question names the user')
  t.equal(declined.code, 1, 'declined: failed')
  t.equal(users(), 1, 'nothing deleted')
  const accepted = await onTerminal('y')
  t.equal(accepted.code, 0, 'confirmed: done')
  t.equal(users(), 0)
})
