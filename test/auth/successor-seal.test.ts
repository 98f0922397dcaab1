import t from 'tap'
import { SuccessorSeal } from '../../src/auth/successor-seal.js'
import { generateRefreshToken } from '../../src/auth/token-rules.js'
import { TEST_SECRET } from '../helpers.js'

const seal = new SuccessorSeal(TEST_SECRET)
const token = generateRefreshToken()
const predecessorId = '8d3b2c8e-2d4f-4a43-9d8b-0e1f2a3b4c5d'

t.test('round-trips a successor for its predecessor', async (t) => {
  const sealed = seal.seal(token, predecessorId)
  t.equal(seal.open(sealed, predecessorId), token)
  t.equal(new SuccessorSeal(TEST_SECRET).open(sealed, predecessorId), token, 'another instance with the same secret opens it')
  t.notMatch(sealed, token, 'the value is not in the clear')
  t.match(sealed, /^[A-Za-z0-9_-]+$/, 'stored as base64url')
  t.not(seal.seal(token, predecessorId), sealed, 'a fresh IV every time')
})

t.test('fails closed', async (t) => {
  const sealed = seal.seal(token, predecessorId)
  t.equal(seal.open(sealed, 'another-predecessor'), null, 'another predecessor id')
  t.equal(new SuccessorSeal(TEST_SECRET + '-other').open(sealed, predecessorId), null, 'another secret')
  const raw = Buffer.from(sealed, 'base64url')
  for (const position of [0, 12, 28, raw.length - 1]) {
    const tampered = Buffer.from(raw)
    tampered[position] = (tampered[position] ?? 0) ^ 0x01
    t.equal(seal.open(tampered.toString('base64url'), predecessorId), null, `a flipped bit at byte ${position}`)
  }
  t.equal(seal.open(raw.subarray(0, raw.length - 1).toString('base64url'), predecessorId), null, 'truncated')
  t.equal(seal.open(raw.subarray(0, 28).toString('base64url'), predecessorId), null, 'no ciphertext')
  t.equal(seal.open('', predecessorId), null, 'empty')
  t.equal(seal.open('not sealed at all', predecessorId), null, 'garbage')
})
