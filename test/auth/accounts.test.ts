import t, { type Test } from 'tap'
import { PasswordHasher } from '../../src/auth/passwords.js'
import type { IssuedTokens } from '../../src/auth/sessions.js'
import { isAccessTokenRevoked } from '../../src/auth/token-rules.js'
import { testDatabases } from '../helpers.js'
import { SECOND, claimsOf, sessionFixture } from './session-fixture.js'

const PASSWORD = 'correct horse battery staple'
const ADDRESS = '192.0.2.1'
const MAX_FAILURES = 3
const LOCK_WINDOW = 900
const mobile = { client: 'mobile' as const }
const INVALID_CREDENTIALS = { code: 'AUTH_INVALID_CREDENTIALS' }

/** A real hasher whose next verify can be held once it has run, to place a concurrent change right after a check. */
class HoldableHasher extends PasswordHasher {
  private held: { reached: () => void, released: Promise<void> } | null = null

  /** The next verify runs, then waits for `release`; `reached` resolves when it has run. */
  holdNextVerify () {
    let reached!: () => void
    let release!: () => void
    const reachedPromise = new Promise<void>((resolve) => { reached = resolve })
    this.held = { reached, released: new Promise<void>((resolve) => { release = resolve }) }
    return { reached: reachedPromise, release }
  }

  override async verify (passwordHash: string, password: string): Promise<boolean> {
    const held = this.held
    this.held = null
    const valid = await super.verify(passwordHash, password)
    if (held !== null) {
      held.reached()
      await held.released
    }
    return valid
  }
}

async function accountsFixture (t: Parameters<typeof sessionFixture>[0], database: Parameters<typeof sessionFixture>[1]) {
  const hasher = new HoldableHasher(2)
  const env = { LOGIN_MAX_FAILURES: String(MAX_FAILURES), LOGIN_LOCK_WINDOW: String(LOCK_WINDOW) }
  return { ...await sessionFixture(t, database, { env, passwordHasher: hasher }), hasher }
}

type Fixture = Awaited<ReturnType<typeof accountsFixture>>

/** Whatever a login returned must not outlive a change that committed: its refresh and access tokens are dead. */
async function assertDead (t: Test, f: Fixture, issued: IssuedTokens, what: string) {
  t.ok(isAccessTokenRevoked(claimsOf(issued.accessToken), f.revocations), `${what}: its access token is refused`)
  await t.rejects(f.sessions.refresh(issued.refreshToken), { code: 'AUTH_REFRESH_INVALID' }, `${what}: its refresh token is refused`)
}

for (const database of testDatabases()) {
  t.test(`register (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('Ａlice', PASSWORD)
    t.same(user, { id: user.id, username: 'Alice' }, 'kept as typed, NFKC-normalized')
    const row = await f.db.user.findUniqueOrThrow({ where: { id: user.id } })
    t.equal(row.usernameKey, 'alice')
    t.equal(row.tokenVersion, 0)
    t.match(row.passwordHash, /^\$argon2id\$/)
    t.notMatch(row.passwordHash, PASSWORD)
    await t.rejects(f.accounts.register('ＡＬＩＣＥ', PASSWORD), { code: 'AUTH_USERNAME_TAKEN' }, 'a look-alike is the same name')
    await t.rejects(f.accounts.register('al', PASSWORD), { code: 'VALIDATION_ERROR' })
    await t.rejects(f.accounts.register('bob', 'short'), { code: 'AUTH_WEAK_PASSWORD' })
    await t.rejects(f.accounts.register('bobsmith', 'BobSmith'), { code: 'AUTH_WEAK_PASSWORD' })
    t.equal(await f.db.user.count(), 1)
    t.same(await f.accounts.findAccount(user.id), user)
    t.equal(await f.accounts.findAccount('nobody'), null)
  })

  t.test(`concurrent registrations of one name: one wins, the rest are told it is taken (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const results = await Promise.allSettled(['carol', 'Carol', 'CAROL', 'ｃａｒｏｌ'].map(async (name) => f.accounts.register(name, PASSWORD)))
    t.equal(results.filter((result) => result.status === 'fulfilled').length, 1)
    for (const result of results) if (result.status === 'rejected') t.has(result.reason, { code: 'AUTH_USERNAME_TAKEN' })
    t.equal(await f.db.user.count(), 1)
  })

  t.test(`login (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('dave', PASSWORD)
    const issued = await f.accounts.login('ＤＡＶＥ', PASSWORD, ADDRESS, { client: 'web', userAgent: 'agent' })
    t.same(issued.user, user)
    t.equal(issued.client, 'web')
    t.has(claimsOf(issued.accessToken), { sub: user.id, sid: issued.sessionId, ver: 0, preferred_username: 'dave' })
    await f.sessions.refresh(issued.refreshToken)

    await t.rejects(f.accounts.login('dave', PASSWORD + ' ', ADDRESS, mobile), INVALID_CREDENTIALS, 'wrong password')
    await t.rejects(f.accounts.login('nobody', PASSWORD, '192.0.2.9', mobile), INVALID_CREDENTIALS, 'unknown user, same answer')
    await f.db.user.update({ where: { id: user.id }, data: { disabled: true } })
    await t.rejects(f.accounts.login('dave', PASSWORD, '192.0.2.8', mobile), INVALID_CREDENTIALS, 'disabled user, same answer')
  })

  t.test(`login failures lock the (account, address) pair (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    await f.accounts.register('erin', PASSWORD)
    for (let failure = 1; failure <= MAX_FAILURES; failure++) {
      await t.rejects(f.accounts.login('erin', 'wrong password!', ADDRESS, mobile), INVALID_CREDENTIALS)
    }
    await t.rejects(f.accounts.login('erin', PASSWORD, ADDRESS, mobile), { code: 'AUTH_RATE_LIMITED', retryAfter: LOCK_WINDOW },
      'locked even with the right password')
    await t.rejects(f.accounts.login('ERIN', PASSWORD, ADDRESS, mobile), { code: 'AUTH_RATE_LIMITED' }, 'counted per account, not per spelling')
    t.equal(await f.db.session.count(), 0)
    await f.accounts.login('erin', PASSWORD, '192.0.2.2', mobile)
    for (let failure = 1; failure <= MAX_FAILURES; failure++) {
      await t.rejects(f.accounts.login('ghost', 'wrong password!', ADDRESS, mobile), INVALID_CREDENTIALS)
    }
    await t.rejects(f.accounts.login('ghost', 'wrong password!', ADDRESS, mobile), { code: 'AUTH_RATE_LIMITED' }, 'unknown accounts lock the same way')

    f.clock.advance(LOCK_WINDOW * SECOND)
    await f.accounts.login('erin', PASSWORD, ADDRESS, mobile)
    // The success cleared the count: the full allowance of failures again.
    for (let failure = 1; failure <= MAX_FAILURES; failure++) {
      await t.rejects(f.accounts.login('erin', 'wrong password!', ADDRESS, mobile), INVALID_CREDENTIALS)
    }
    await t.rejects(f.accounts.login('erin', PASSWORD, ADDRESS, mobile), { code: 'AUTH_RATE_LIMITED' })
  })

  t.test(`changePassword ends every session and starts a fresh one (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('frank', PASSWORD)
    const phone = await f.accounts.login('frank', PASSWORD, ADDRESS, mobile)
    const laptop = await f.accounts.login('frank', PASSWORD, ADDRESS, { client: 'web' })
    const newPassword = 'another correct staple'

    await t.rejects(f.accounts.changePassword(user.id, 'wrong password!', newPassword, ADDRESS, mobile), INVALID_CREDENTIALS)
    await t.rejects(f.accounts.changePassword(user.id, PASSWORD, 'short', ADDRESS, mobile), { code: 'AUTH_WEAK_PASSWORD' })
    t.equal(f.revocations.minimumTokenVersion(user.id), 0, 'nothing ended by a refused change')
    await f.sessions.refresh(phone.refreshToken).then((renewed) => { phone.refreshToken = renewed.refreshToken })

    const issued = await f.accounts.changePassword(user.id, PASSWORD, newPassword, ADDRESS, { client: 'web' })
    t.equal(issued.client, 'web')
    t.equal(claimsOf(issued.accessToken).ver, 1)
    t.equal(f.revocations.minimumTokenVersion(user.id), 1)
    t.ok(isAccessTokenRevoked(claimsOf(phone.accessToken), f.revocations))
    t.ok(isAccessTokenRevoked(claimsOf(laptop.accessToken), f.revocations), "the caller's old access token too")
    t.notOk(isAccessTokenRevoked(claimsOf(issued.accessToken), f.revocations))
    await t.rejects(f.sessions.refresh(phone.refreshToken), { code: 'AUTH_REFRESH_INVALID' })
    await t.rejects(f.sessions.refresh(laptop.refreshToken), { code: 'AUTH_REFRESH_INVALID' })
    const renewed = await f.sessions.refresh(issued.refreshToken)
    t.equal(claimsOf(renewed.accessToken).ver, 1)
    t.same((await f.sessions.listSessions(user.id, issued.sessionId)).map((session) => session.id), [issued.sessionId])

    await t.rejects(f.accounts.login('frank', PASSWORD, ADDRESS, mobile), INVALID_CREDENTIALS, 'the old password is gone')
    await f.accounts.login('frank', newPassword, ADDRESS, mobile)
  })

  t.test(`a password change committed between a login's check and its session: the login fails (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('gina', PASSWORD)
    const held = f.hasher.holdNextVerify()
    const oldLogin = f.accounts.login('gina', PASSWORD, ADDRESS, mobile)
    await held.reached
    const changed = await f.accounts.changePassword(user.id, PASSWORD, 'the new staple battery', ADDRESS, mobile)
    held.release()
    await t.rejects(oldLogin, INVALID_CREDENTIALS, 'the password it checked is no longer the account\'s')
    t.equal(await f.db.session.count({ where: { userId: user.id } }), 1, 'no session was written for it')
    await f.sessions.refresh(changed.refreshToken)
  })

  t.test(`a logout-everywhere committed between a login's check and its session: the login's session starts after it (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('hank', PASSWORD)
    const held = f.hasher.holdNextVerify()
    const login = f.accounts.login('hank', PASSWORD, ADDRESS, mobile)
    await held.reached
    await f.sessions.logoutEverywhere(user.id)
    held.release()
    const issued = await login
    t.equal(claimsOf(issued.accessToken).ver, 1, 'bound to the version after the logout')
    t.notOk(isAccessTokenRevoked(claimsOf(issued.accessToken), f.revocations))
    await f.sessions.refresh(issued.refreshToken)
  })

  t.test(`a login with the old password racing a password change never keeps a working session (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const outcomes = { loginFailed: 0, loginEnded: 0 }
    /** One round: a login with the old password and a change of it, started as `start` says. */
    async function round (label: string, start: (name: string, userId: string, newPassword: string) => [Promise<IssuedTokens>, Promise<IssuedTokens>]) {
      const name = `ivy${outcomes.loginFailed + outcomes.loginEnded}`
      const user = await f.accounts.register(name, PASSWORD)
      const caller = await f.accounts.login(name, PASSWORD, ADDRESS, mobile)
      const newPassword = `the new staple battery ${name}`
      const [login, change] = await Promise.allSettled(start(name, user.id, newPassword))
      t.equal(change.status, 'fulfilled', `${label}: the change succeeds`)
      if (change.status === 'fulfilled') await f.sessions.refresh(change.value.refreshToken)
      await assertDead(t, f, caller, `${label}: the session before the change`)
      if (login.status === 'fulfilled') {
        outcomes.loginEnded++
        await assertDead(t, f, login.value, `${label}: the racing login`)
      } else {
        outcomes.loginFailed++
        t.has(login.reason, INVALID_CREDENTIALS, `${label}: the racing login failed with the old password`)
      }
      await t.rejects(f.accounts.login(name, PASSWORD, ADDRESS, mobile), INVALID_CREDENTIALS)
      await f.accounts.login(name, newPassword, ADDRESS, mobile)
      return login.status === 'fulfilled' ? 'login ended' : 'login failed'
    }
    const change = async (userId: string, newPassword: string) => f.accounts.changePassword(userId, PASSWORD, newPassword, ADDRESS, mobile)

    // Each side forced once, so both branches above are checked whichever way the free races go.
    t.equal(await round('login committed first', (name, userId, newPassword) => {
      const login = f.accounts.login(name, PASSWORD, '192.0.2.9', mobile)
      return [login, login.then(async () => change(userId, newPassword))]
    }), 'login ended')
    t.equal(await round('change committed after the login\'s check', (name, userId, newPassword) => {
      const held = f.hasher.holdNextVerify()
      const login = f.accounts.login(name, PASSWORD, '192.0.2.9', mobile)
      const changed = held.reached.then(async () => change(userId, newPassword)).finally(held.release)
      return [login, changed]
    }), 'login failed')
    for (let free = 0; free < 6; free++) {
      // The login starts first or a little later, so each side wins in some rounds.
      await round(`free round ${free}`, (name, userId, newPassword) => [
        (async () => { await new Promise((resolve) => setTimeout(resolve, free % 3 === 0 ? 0 : free * 4)); return f.accounts.login(name, PASSWORD, `192.0.2.${free + 10}`, mobile) })(),
        change(userId, newPassword)
      ])
    }
    t.ok(outcomes.loginFailed > 0 && outcomes.loginEnded > 0, `both outcomes were checked: ${JSON.stringify(outcomes)}`)
  })

  t.test(`a login racing logout-everywhere: its session is ended or started after it (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const outcomes = new Set<string>()
    let rounds = 0
    async function round (label: string, start: (name: string, userId: string) => [Promise<IssuedTokens>, Promise<unknown>]) {
      const name = `jack${rounds++}`
      const user = await f.accounts.register(name, PASSWORD)
      const [login] = await Promise.all(start(name, user.id))
      const version = (await f.db.user.findUniqueOrThrow({ where: { id: user.id } })).tokenVersion
      t.equal(version, 1, `${label}: the logout raised the token version`)
      if (claimsOf(login.accessToken).ver < version) {
        outcomes.add('login before')
        await assertDead(t, f, login, `${label}: a login that started before the logout`)
      } else {
        outcomes.add('login after')
        t.notOk(isAccessTokenRevoked(claimsOf(login.accessToken), f.revocations), `${label}: a login after the logout works`)
        await f.sessions.refresh(login.refreshToken)
      }
    }
    // Each side forced once, so both branches above are checked whichever way the free races go.
    await round('login committed first', (name, userId) => {
      const login = f.accounts.login(name, PASSWORD, ADDRESS, mobile)
      return [login, login.then(async () => f.sessions.logoutEverywhere(userId))]
    })
    await round('logout committed after the login\'s check', (name, userId) => {
      const held = f.hasher.holdNextVerify()
      const login = f.accounts.login(name, PASSWORD, ADDRESS, mobile)
      return [login, held.reached.then(async () => f.sessions.logoutEverywhere(userId)).finally(held.release)]
    })
    t.same([...outcomes], ['login before', 'login after'], 'forced: each side as forced')
    for (let free = 0; free < 6; free++) {
      await round(`free round ${free}`, (name, userId) => [
        f.accounts.login(name, PASSWORD, ADDRESS, mobile),
        (async () => { await new Promise((resolve) => setTimeout(resolve, free * 3)); await f.sessions.logoutEverywhere(userId) })()
      ])
    }
  })

  t.test(`two password changes from the same password: one wins, the other fails and leaves it intact (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    const user = await f.accounts.register('kate', PASSWORD)
    const held = f.hasher.holdNextVerify()
    const first = f.accounts.changePassword(user.id, PASSWORD, 'first new password', ADDRESS, mobile)
    await held.reached
    const second = await f.accounts.changePassword(user.id, PASSWORD, 'second new password', ADDRESS, mobile)
    held.release()
    await t.rejects(first, INVALID_CREDENTIALS, 'the current password it checked is no longer right')
    await f.sessions.refresh(second.refreshToken)
    await f.accounts.login('kate', 'second new password', ADDRESS, mobile)
    await t.rejects(f.accounts.login('kate', 'first new password', ADDRESS, mobile), INVALID_CREDENTIALS)

    for (let round = 0; round < 4; round++) {
      const name = `leo${round}`
      const account = await f.accounts.register(name, PASSWORD)
      const results = await Promise.allSettled(['P1', 'P2'].map(async (label, i) => {
        if (i === 1) await new Promise((resolve) => setTimeout(resolve, round * 5))
        return f.accounts.changePassword(account.id, PASSWORD, `${label} new password ${round}`, ADDRESS, mobile)
      }))
      const won = results.findIndex((result) => result.status === 'fulfilled')
      t.equal(results.filter((result) => result.status === 'fulfilled').length, 1, 'exactly one change is acknowledged')
      const lost = results[1 - won]!
      if (lost.status === 'rejected') t.has(lost.reason, INVALID_CREDENTIALS)
      const winner = results[won]
      if (winner?.status === 'fulfilled') await f.sessions.refresh(winner.value.refreshToken)
      await f.accounts.login(name, `${won === 0 ? 'P1' : 'P2'} new password ${round}`, `192.0.2.${round + 20}`, mobile)
      await t.rejects(f.accounts.login(name, `${won === 0 ? 'P2' : 'P1'} new password ${round}`, `192.0.2.${round + 30}`, mobile), INVALID_CREDENTIALS, 'the losing password never took')
    }
  })

  t.test(`concurrent correct logins of one account from one address all succeed (${database})`, async (t) => {
    const f = await accountsFixture(t, database)
    await f.accounts.register('mia', PASSWORD)
    const results = await Promise.allSettled(Array.from({ length: 8 }, async () => f.accounts.login('mia', PASSWORD, ADDRESS, mobile)))
    t.same(results.map((result) => result.status), Array(8).fill('fulfilled'))
    const wrong = await Promise.allSettled(Array.from({ length: 10 }, async () => f.accounts.login('mia', 'wrong password!', ADDRESS, mobile)))
    t.equal(wrong.filter((result) => result.status === 'rejected' && (result.reason as { code?: string }).code === 'AUTH_INVALID_CREDENTIALS').length, MAX_FAILURES,
      'wrong guesses at once: only the failures left get a password check')
    t.equal(wrong.filter((result) => result.status === 'rejected' && (result.reason as { retryAfter?: number }).retryAfter === LOCK_WINDOW).length, 10 - MAX_FAILURES)
  })
}
