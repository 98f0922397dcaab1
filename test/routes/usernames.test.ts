// Look-alike usernames (issue 10): beside an existing `alice…`, names that read the same are taken
// (UTS #39 skeleton), names with characters outside the profile are invalid (PRECIS + UTS #39
// General Security Profile), and the rule holds when look-alikes register at the same moment.
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import t from 'tap'
import { PASSWORD, assertError, json, login, register, testApp, testDatabases } from '../helpers.js'
import { snapshot } from '../security/support.js'

for (const database of testDatabases()) {
  t.test(`look-alikes of an existing user are refused (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const base = `alice${randomBytes(2).toString('hex').replace(/[^a-f]/g, 'x')}`
    await register(app, base)
    const before = await snapshot(app)
    const send = (username: string) => app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
    const swap = (from: string, to: string) => base.replace(from, to)
    const lookAlikes: Array<[string, string]> = [
      ['Cyrillic а', swap('a', '\u0430')],
      ['Cyrillic о (in "alice" there is none: appended)', `${base}\u043e`.replace(/\u043e$/, '')],
      ['Cyrillic і', swap('i', '\u0456')],
      ['Cyrillic е', swap('e', '\u0435')],
      ['Cyrillic а, і and е', swap('a', '\u0430').replace('i', '\u0456').replace('e', '\u0435')],
      ['Greek α', swap('a', '\u03b1')],
      ['dotless ı', swap('i', '\u0131')],
      ['upper case', base.toUpperCase()],
      ['full-width', [...base].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('')]
    ]
    for (const [what, name] of lookAlikes) {
      if (name === base) continue
      assertError(t, await send(name), 409, 'AUTH_USERNAME_TAKEN', what)
    }
    const invalid: Array<[string, string]> = [
      ['small-capital ᴀ', swap('a', '\u1d00')],
      ['Hangul filler U+3164 in front', `\u3164${base}`],
      ['Hangul filler U+3164 behind', `${base}\u3164`],
      ['half-width Hangul filler', `${base}\uffa0`],
      ['zero-width joiner', `${base}\u200d`]
    ]
    for (const [what, name] of invalid) {
      const response = await send(name)
      assertError(t, response, 400, 'VALIDATION_ERROR', what)
      t.match(json(response).message, /^username must not contain /, `${what}: the message names the character`)
    }
    t.equal(await snapshot(app), before, 'nothing was written')
    // Cyrillic о and р in another name, with its Latin original taken.
    await register(app, 'popover')
    assertError(t, await send('\u0440\u043e\u0440\u043ever'), 409, 'AUTH_USERNAME_TAKEN', 'Cyrillic р and о')
    assertError(t, await send('p\u03bfpover'), 409, 'AUTH_USERNAME_TAKEN', 'Greek ο')
    // Controls: a different name is free, and the genuine name still logs in.
    t.equal((await send(`${base}z`)).statusCode, 201, 'a different name registers')
    t.equal((await login(app, base)).user.username, base)
  })

  t.test(`login finds the user by the PRECIS-prepared form (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const { user } = await register(app, 'Zoe.Example')
    for (const typed of ['zoe.example', 'ZOE.EXAMPLE', 'Ｚｏｅ．Ｅｘａｍｐｌｅ']) {
      t.equal((await login(app, typed)).user.id, user.id, typed)
    }
    const lookAlike = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'z\u043ee.example', password: PASSWORD } })
    assertError(t, lookAlike, 401, 'AUTH_INVALID_CREDENTIALS', 'a look-alike is not the account')
    const full = await register(app, 'ＭＩＫＡ')
    t.equal(full.user.username, 'MIKA', 'the full-width name is kept in its ordinary width')
  })

  t.test(`concurrent registrations of look-alikes: exactly one succeeds (${database})`, async (t) => {
    const app = await testApp(t, { database })
    for (let round = 0; round < 3; round++) {
      const base = `racer${'abcdefgh'[round]}`
      const names = [base, base.replace('a', '\u0430'), base.replace('e', '\u0435'), base.replace('a', '\u03b1'), base.toUpperCase(), base.replace('c', '\u0441')]
      const responses = await Promise.all(names.map((username) => app.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })))
      const statuses = responses.map((response) => response.statusCode)
      t.equal(statuses.filter((status) => status === 201).length, 1, `round ${round}: one registration wins (${statuses.join(' ')})`)
      t.equal(statuses.filter((status) => status === 409).length, names.length - 1, `round ${round}: the others are AUTH_USERNAME_TAKEN`)
      for (const response of responses) if (response.statusCode === 409) t.equal(json(response).code, 'AUTH_USERNAME_TAKEN')
      t.equal(await app.db.user.count({ where: { usernameSkeleton: { not: null }, username: { in: names.map((name) => name) } } }), 1)
    }
  })

  t.test(`users from before skeletons keep their names and get a skeleton at start (${database})`, async (t) => {
    const first = await testApp(t, { database })
    const now = new Date()
    const older = async (username: string) => {
      const id = randomUUID()
      // As a row written before the migration: NFKC + lower case key, no skeleton.
      await first.db.user.create({ data: { id, username, usernameKey: username.normalize('NFKC').toLowerCase(), passwordHash: createHash('sha256').update(id).digest('hex'), createdAt: now, updatedAt: now } })
      return id
    }
    // Older look-alikes both stay; only one of them can hold the skeleton.
    const carol = await older('carol')
    const lookAlikeCarol = await older('c\u0430rol')
    const dave = await older('Dave')
    const second = await testApp(t, { sameDatabaseAs: first })
    const rows = await second.db.user.findMany({ where: { id: { in: [carol, lookAlikeCarol, dave] } } })
    const byId = new Map(rows.map((row) => [row.id, row]))
    t.same([byId.get(carol)!.usernameSkeleton, byId.get(lookAlikeCarol)!.usernameSkeleton].sort(), ['carol', null].sort(), 'one of two older look-alikes holds the skeleton, the other none')
    t.equal(byId.get(dave)!.usernameSkeleton, 'dave')
    t.equal(byId.get(dave)!.username, 'Dave', 'names are kept as they were')
    t.equal(byId.get(lookAlikeCarol)!.username, 'c\u0430rol', 'an older look-alike keeps its account and name')
    const send = (username: string) => second.inject({ method: 'POST', url: '/auth/register', payload: { username, password: PASSWORD } })
    assertError(t, await send('c\u0430r\u043el'), 409, 'AUTH_USERNAME_TAKEN', 'a new look-alike of older users')
    assertError(t, await send('d\u0430ve'), 409, 'AUTH_USERNAME_TAKEN', 'a new look-alike of an older user')
    t.equal((await send('erin')).statusCode, 201, 'control: a fresh name registers')
  })

  t.test(`two instances starting at once both fill in skeletons, without errors (${database})`, async (t) => {
    const first = await testApp(t, { database })
    const now = new Date()
    const ids: string[] = []
    for (let i = 0; i < 30; i++) {
      const id = randomUUID()
      const username = i % 3 === 0 ? `old\u0430user${i}` : `olduser${i}`
      ids.push(id)
      await first.db.user.create({ data: { id, username, usernameKey: username.toLowerCase(), passwordHash: 'x', createdAt: now, updatedAt: now } })
    }
    const [a, b] = await Promise.all([testApp(t, { sameDatabaseAs: first }), testApp(t, { sameDatabaseAs: first })])
    const rows = await a.db.user.findMany({ where: { id: { in: ids } } })
    const skeletons = rows.map((row) => row.usernameSkeleton).filter((skeleton) => skeleton !== null)
    t.equal(new Set(skeletons).size, skeletons.length, 'no skeleton twice')
    t.equal(skeletons.length, 30, 'every older user got a skeleton (none of these names look alike)')
    const response = await b.inject({ method: 'POST', url: '/auth/register', payload: { username: 'olduser1', password: PASSWORD } })
    t.equal(response.statusCode, 409, 'a name of an older user is taken')
  })

  t.test(`registration raced against logins of the same name: no 5xx, and logins work after (${database})`, async (t) => {
    const app = await testApp(t, { database })
    const name = `racelogin${randomBytes(2).toString('hex').replace(/[0-9]/g, 'q')}`
    const responses = await Promise.all([
      app.inject({ method: 'POST', url: '/auth/register', payload: { username: name, password: PASSWORD } }),
      app.inject({ method: 'POST', url: '/auth/register', payload: { username: name.replace('a', '\u0430'), password: PASSWORD } }),
      ...Array.from({ length: 4 }, () => app.inject({ method: 'POST', url: '/auth/login', payload: { username: name, password: PASSWORD } }))
    ])
    for (const response of responses) t.ok(response.statusCode < 500, `no 5xx (${response.statusCode})`)
    t.same(responses.slice(0, 2).map((response) => response.statusCode).sort(), [201, 409], 'one of the look-alikes registered')
    for (const response of responses.slice(2)) t.ok([200, 401].includes(response.statusCode), 'a login before the user exists is 401, after it 200')
    const winner = json(responses[0]!).user?.username ?? json(responses[1]!).user.username
    t.equal((await login(app, winner)).user.username, winner, 'the registered name logs in')
  })
}
