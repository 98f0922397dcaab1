import t from 'tap'
import { PASSWORD_MAX_LENGTH, PasswordHasher, characterCount, passwordWeakness } from '../../src/auth/passwords.js'

t.test('hashes with argon2id and verifies', async (t) => {
  const hasher = new PasswordHasher(2)
  const hash = await hasher.hash('correct horse battery staple')
  t.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
  t.ok(await hasher.verify(hash, 'correct horse battery staple'))
  t.notOk(await hasher.verify(hash, 'correct horse battery stapler'))
  t.not(await hasher.hash('correct horse battery staple'), hash, 'salted')
  t.equal(await hasher.verify('not a hash', 'anything'), false, 'a malformed hash is a failed check, not an error')
  t.equal(await hasher.verifyAgainstDummy('correct horse battery staple'), false)
})

t.test('a password longer than 72 bytes is not truncated', async (t) => {
  const hasher = new PasswordHasher(2)
  const prefix = 'p'.repeat(60) + 'ä'.repeat(20) // 100 bytes, shared
  const one = prefix + 'one'
  const two = prefix + 'two'
  t.ok(Buffer.byteLength(prefix) > 72)
  const hash = await hasher.hash(one)
  t.ok(await hasher.verify(hash, one))
  t.notOk(await hasher.verify(hash, two), 'differs only after the first 100 bytes')
  t.notOk(await hasher.verify(hash, prefix), 'the prefix alone')
  const longest = 'λ'.repeat(PASSWORD_MAX_LENGTH)
  const longHash = await hasher.hash(longest)
  t.ok(await hasher.verify(longHash, longest))
  t.notOk(await hasher.verify(longHash, 'λ'.repeat(PASSWORD_MAX_LENGTH - 1) + 'μ'), 'the last of 1024 characters counts')
})

t.test('passwords are compared exactly as received', async (t) => {
  const hasher = new PasswordHasher(2)
  const nfc = 'pässword'.normalize('NFC')
  const nfd = 'pässword'.normalize('NFD')
  t.not(nfc, nfd)
  const hash = await hasher.hash(nfc)
  t.ok(await hasher.verify(hash, nfc))
  t.notOk(await hasher.verify(hash, nfd), 'NFD is another password')
  t.notOk(await hasher.verify(hash, ` ${nfc}`), 'no trimming (leading)')
  t.notOk(await hasher.verify(hash, `${nfc} `), 'no trimming (trailing)')
  t.notOk(await hasher.verify(hash, 'PÄSSWORD'), 'case matters')
  const spaced = ' spaced out '
  t.ok(await hasher.verify(await hasher.hash(spaced), spaced), 'surrounding spaces are part of the password')
})

t.test('the concurrency limit is respected', async (t) => {
  const hasher = new PasswordHasher(2)
  t.equal(hasher.concurrency, 2)
  const limit = (hasher as unknown as { limit: { activeCount: number, pendingCount: number } }).limit
  t.equal(hasher.queued, 0)
  let settled = 0
  const work = Array.from({ length: 5 }, async (_, i) => hasher.hash(`password number ${i}`).finally(() => { settled++ }))
  t.equal(limit.activeCount + limit.pendingCount, 5, 'all five go through the limiter as soon as they are asked for')
  const activeSeen = new Set<number>()
  const queuedSeen = new Set<number>()
  const queuedMismatches: string[] = []
  while (settled < 5) {
    activeSeen.add(limit.activeCount)
    queuedSeen.add(hasher.queued)
    if (hasher.queued !== limit.pendingCount) queuedMismatches.push(`queued ${hasher.queued}, limiter waiting ${limit.pendingCount}`)
    await new Promise((resolve) => setImmediate(resolve))
  }
  await Promise.all(work)
  t.ok(Math.max(...activeSeen) <= 2, `never more than 2 running (saw ${[...activeSeen].sort().join(', ')})`)
  t.ok(Math.max(...activeSeen) >= 1, 'work did run through the limiter')
  t.ok(Math.max(...queuedSeen) >= 1, `work did wait for a slot (queued seen: ${[...queuedSeen].sort().join(', ')})`)
  t.same(queuedMismatches, [], 'queued counts what waits for a slot')
  t.equal(hasher.queued, 0)
})

t.test('passwordWeakness', async (t) => {
  t.equal(passwordWeakness('correct horse battery staple', 'alice'), null)
  t.match(passwordWeakness('short', 'alice'), /at least 8/)
  t.match(passwordWeakness('😀😁😂😃😄😅😆', 'alice'), /at least 8/, 'length in code points, not UTF-16 units')
  t.equal(passwordWeakness('😀😁😂😃😄😅😆😇', 'alice'), null)
  t.match(passwordWeakness('x'.repeat(PASSWORD_MAX_LENGTH - 2) + 'yz!', 'alice'), /at most 1024/)
  t.equal(passwordWeakness('x'.repeat(PASSWORD_MAX_LENGTH - 2) + 'yz', 'alice'), null)
  // Only the length counts: repeated characters are a valid password (8 to 1024 characters, any Unicode).
  for (const password of ['aaaaaaaa', 'abababababab', 'a'.repeat(PASSWORD_MAX_LENGTH), '😀'.repeat(8), '😀'.repeat(PASSWORD_MAX_LENGTH)]) {
    t.equal(passwordWeakness(password, 'alice'), null, `${JSON.stringify(password.slice(0, 4))}… (${[...password].length} characters)`)
  }
  t.match(passwordWeakness('a'.repeat(7), 'alice'), /at least 8/)
  t.match(passwordWeakness('a'.repeat(PASSWORD_MAX_LENGTH + 1), 'alice'), /at most 1024/)
  t.match(passwordWeakness('😀'.repeat(PASSWORD_MAX_LENGTH + 1), 'alice'), /at most 1024/)
  t.equal(characterCount('😀'.repeat(PASSWORD_MAX_LENGTH)), PASSWORD_MAX_LENGTH, 'characterCount counts code points')
  t.equal(characterCount(''), 0)
  t.match(passwordWeakness('Alice.Smith', 'alice.smith'), /differ from the username/)
  t.match(passwordWeakness('ＡＬＩＣＥＳＭＩＴＨ', 'alicesmith'), /differ from the username/, 'compared like usernames')
})
