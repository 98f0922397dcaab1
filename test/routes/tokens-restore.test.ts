// A correctly signed token is honoured only while its session exists, belongs to its `sub` and is
// live: after a database restore (or reset) that kept the signing key, tokens minted since the copy
// name sessions that no longer exist. Each instance confirms a token against the database the first
// time it sees it, then answers from memory.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { type TestDatabase, assertTokenRejected, login, refresh, signedIn, testApp, testDatabases } from '../helpers.js'
import { assertAccessWorks, me, resign } from './tokens-support.js'

/** Takes a copy of the running app's database now; `restore` puts it back under the running app. */
async function snapshot (t: Parameters<typeof testApp>[0], app: FastifyInstance, database: TestDatabase) {
  const dir = mkdtempSync(join(tmpdir(), 'auth-restore-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const copy = join(dir, 'copy')
  if (database === 'sqlite') {
    const live = app.config.database.url.slice('file:'.length)
    const source = new Database(live)
    await source.backup(copy) // SQLite's online backup
    source.close()
    return {
      async restore () {
        const saved = new Database(copy)
        await saved.backup(live) // written through SQLite's locks, under the running app's connection
        saved.close()
      }
    }
  }
  const url = new URL(app.config.database.url)
  const schema = url.searchParams.get('schema')!
  url.search = ''
  execFileSync('pg_dump', ['--dbname', url.toString(), '--schema', schema, '--format', 'custom', '--file', copy])
  return {
    async restore () {
      execFileSync('pg_restore', ['--dbname', url.toString(), '--clean', '--if-exists', copy])
    }
  }
}

for (const database of testDatabases()) {
  t.test(`a database restored from a copy taken before a login: the login's tokens are refused (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const before = await signedIn(app)
    await assertAccessWorks(t, app, before.tokens.accessToken, before.user.id, 'a token used before the copy')
    const copy = await snapshot(t, app, database)
    const after = await login(app, before.username)
    const other = await testApp(t, { database, sameDatabaseAs: app })
    await copy.restore()

    assertTokenRejected(t, await me(app, after.accessToken), 'AUTH_TOKEN_REVOKED', 'a token of a session the restore removed')
    assertTokenRejected(t, await me(other, after.accessToken), 'AUTH_TOKEN_REVOKED', 'on another instance too')
    t.equal((await refresh(app, after.refreshToken)).statusCode, 401, 'its refresh token is unknown')
    await assertAccessWorks(t, app, before.tokens.accessToken, before.user.id, 'a session the copy holds')
    await assertAccessWorks(t, other, before.tokens.accessToken, before.user.id, 'seen first on another instance, confirmed there')
  })

  t.test(`tokens whose sid names no session, whose sub names no user, or whose sid is another user's are refused (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const alice = await signedIn(app)
    const bob = await signedIn(app)
    const cases = {
      'no such session': resign(alice.tokens.accessToken, { claims: { sid: '00000000-0000-4000-8000-000000000000' } }),
      'no such user': resign(alice.tokens.accessToken, { claims: { sub: '00000000-0000-4000-8000-000000000001' } }),
      "another user's session": resign(alice.tokens.accessToken, { claims: { sid: (JSON.parse(Buffer.from(bob.tokens.accessToken.split('.')[1]!, 'base64url').toString()) as { sid: string }).sid } })
    }
    for (const [what, token] of Object.entries(cases)) {
      assertTokenRejected(t, await me(app, token), 'AUTH_TOKEN_REVOKED', what)
      assertTokenRejected(t, await me(app, token), 'AUTH_TOKEN_REVOKED', `${what}, again`)
    }
    await assertAccessWorks(t, app, alice.tokens.accessToken, alice.user.id)
    await assertAccessWorks(t, app, bob.tokens.accessToken, bob.user.id)
  })
}
