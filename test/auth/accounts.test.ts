import t from 'tap'
import { AccountService } from '../../src/auth/accounts.js'
import { LoginThrottle, MemoryFailureCounterStore } from '../../src/auth/login-throttle.js'
import { PasswordHasher } from '../../src/auth/passwords.js'
import { isAccessTokenRevoked } from '../../src/auth/token-rules.js'
import { testDatabases } from '../helpers.js'
import { SECOND, claimsOf, sessionFixture } from './session-fixture.js'

const PASSWORD = 'correct horse battery staple'
const ADDRESS = '192.0.2.1'
const MAX_FAILURES = 3
const LOCK_WINDOW = 900
const mobile = { client: 'mobile' as const }
const INVALID_CREDENTIALS = { code: 'AUTH_INVALID_CREDENTIALS' }

async function accountsFixture (t: Parameters<typeof sessionFixture>[0], database: Parameters<typeof sessionFixture>[1]) {
  const f = await sessionFixture(t, database)
  const throttle = new LoginThrottle(new MemoryFailureCounterStore(f.clock), f.clock, MAX_FAILURES, LOCK_WINDOW)
  const accounts = new AccountService({ db: f.db, clock: f.clock, hasher: new PasswordHasher(2), throttle, sessions: f.sessions })
  return { ...f, accounts }
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
}
