import t from 'tap'
import { displayUsername, usernameKey, usernameProblem, usernameSkeleton } from '../../src/auth/usernames.js'

t.test('usernameKey: the PRECIS UsernameCaseMapped form (width, case, NFC) names one account', async (t) => {
  t.equal(usernameKey('ＡＬＩＣＥ'), 'alice', 'full-width letters are mapped to their ordinary forms')
  t.equal(usernameKey('ｱﾘｽ'), usernameKey('アリス'), 'half-width katakana too')
  t.equal(usernameKey('Alice'), usernameKey('aLiCe'))
  t.equal(usernameKey('Jose\u0301'), usernameKey('Jos\u00e9'), 'decomposed and composed accents')
  t.not(usernameKey('alice'), usernameKey('alice2'))
  t.equal(displayUsername('ＡＬＩＣＥ'), 'ALICE', 'the display form keeps the case as typed')
})

t.test('usernameProblem accepts good names', async (t) => {
  for (const name of ['alice', 'Bob', 'a.b', 'user_1', 'me@example.com', 'x-y-z', 'Ålesund', 'ユーザー名', '123', 'ＡＬＩＣＥ', 'a'.repeat(64), 'straße', 'ılık', 'нина', 'ελένη', 'नमस्ते', 'שלום']) {
    t.equal(usernameProblem(name), null, name)
  }
})

t.test('usernameProblem rejects bad names, in one sentence', async (t) => {
  for (const name of [
    '', 'ab', ' alice', 'alice ', 'al ice', '_alice', '.alice', '-alice', '@alice', 'alice!', 'al/ice', 'a'.repeat(65), 'alice\n', 'ali\u0000ce', 'ali\u200bce',
    'ᴀlice', 'aʟice', '\u3164alice', 'alice\u3164', 'al\u3164ice', '\uffa0alice', 'ﬁona', 'alice²', 'ali\u00adce', 'ali\u2060ce', 'שלוםabc'
  ]) {
    const problem = usernameProblem(name)
    t.type(problem, 'string', JSON.stringify(name))
    t.match(problem, /^username must /, `${JSON.stringify(name)}: says what is wrong with the username`)
    t.notMatch(problem, /[.!?] [A-Z]|\n/, `${JSON.stringify(name)}: in one sentence`)
  }
})

t.test('usernameSkeleton (UTS #39): look-alikes share a skeleton, different names do not', async (t) => {
  const skeleton = (name: string) => usernameSkeleton(usernameKey(name))
  for (const lookAlike of ['\u0430lice', 'alic\u0435', '\u0430l\u0456c\u0435', '\u03b1lice', 'al\u0131ce', 'ALICE', 'ＡＬＩＣＥ']) {
    t.equal(skeleton(lookAlike), skeleton('alice'), `${lookAlike} looks like alice`)
  }
  t.equal(skeleton('b\u043eb'), skeleton('bob'), 'Cyrillic о')
  t.equal(skeleton('\u0440aul'), skeleton('paul'), 'Cyrillic р')
  t.equal(skeleton('b\u03bfb'), skeleton('bob'), 'Greek ο')
  t.equal(skeleton('rnary'), skeleton('mary'), 'rn and m')
  for (const other of ['alicia', 'alice2', 'bob', 'malice']) t.not(skeleton(other), skeleton('alice'), other)
})
