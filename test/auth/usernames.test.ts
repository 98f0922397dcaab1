import t from 'tap'
import { usernameKey, usernameProblem } from '../../src/auth/usernames.js'

t.test('usernameKey: NFKC and lower case name the same account', async (t) => {
  t.equal(usernameKey('ＡＬＩＣＥ'), 'alice', 'full-width letters')
  t.equal(usernameKey('ＡＬＩＣＥ'), usernameKey('alice'))
  t.equal(usernameKey('Alice'), usernameKey('aLiCe'))
  t.equal(usernameKey('ﬁona'), usernameKey('fiona'), 'a ligature')
  t.equal(usernameKey('Jose\u0301'), usernameKey('Jos\u00e9'), 'decomposed and composed accents')
  t.not(usernameKey('alice'), usernameKey('alice2'))
})

t.test('usernameProblem accepts good names', async (t) => {
  for (const name of ['alice', 'Bob', 'a.b', 'user_1', 'me@example.com', 'x-y-z', 'Ålesund', 'ユーザー名', '123', 'ＡＬＩＣＥ', 'a'.repeat(64)]) {
    t.equal(usernameProblem(name), null, name)
  }
})

t.test('usernameProblem rejects bad names', async (t) => {
  for (const name of ['', 'ab', ' alice', 'alice ', 'al ice', '_alice', '.alice', '-alice', '@alice', 'alice!', 'al/ice', 'a'.repeat(65), 'alice\n', 'ali\u0000ce', 'ali\u200bce']) {
    t.type(usernameProblem(name), 'string', JSON.stringify(name))
  }
})
