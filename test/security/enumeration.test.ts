// Account enumeration: an unknown user, a wrong password and a disabled user must be told apart
// neither by the answer (status, body, headers) nor by the time it takes. The login throttle is
// raised out of the way (it counts per account and address, and would otherwise lock the
// wrong-password account first), and the attempts are interleaved after a warm-up so that drift in
// machine load affects every kind alike.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { PASSWORD, register, testApp, testDatabases } from '../helpers.js'
import { snapshot } from './support.js'

const ROUNDS = 15
const WARM_UP = 3
const MAX_MEDIAN_DIFFERENCE = 0.25
/** Headers that differ between any two responses, whatever they say. */
const PER_REQUEST_HEADERS = new Set(['date', 'x-request-id'])

function median (values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}

function comparable (response: LightMyRequestResponse) {
  const headers = Object.fromEntries(Object.entries(response.headers).filter(([name]) => !PER_REQUEST_HEADERS.has(name.toLowerCase())))
  return { statusCode: response.statusCode, body: response.body, headers }
}

async function timedLogin (app: FastifyInstance, username: string, password: string, remoteAddress: string) {
  const started = process.hrtime.bigint()
  const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username, password }, remoteAddress })
  return { response, ms: Number(process.hrtime.bigint() - started) / 1e6 }
}

for (const database of testDatabases()) {
  t.test(`login does not reveal whether an account exists (${database})`, async (t) => {
    const app = await testApp(t, { database, env: { LOGIN_MAX_FAILURES: '1000', RATE_LIMIT_MAX: '100000' } })
    const known = await register(app)
    const disabled = await register(app)
    await app.db.user.update({ where: { id: disabled.user.id }, data: { disabled: true } })

    const kinds = {
      'unknown user': (round: number) => [`nobody-${round}-${Math.random().toString(36).slice(2)}`, PASSWORD] as const,
      'wrong password': (round: number) => [known.username, `${PASSWORD} wrong ${round}`] as const,
      'disabled user': (round: number) => [disabled.username, PASSWORD] as const
    }
    type Kind = keyof typeof kinds
    const times: Record<Kind, number[]> = { 'unknown user': [], 'wrong password': [], 'disabled user': [] }
    const answers: Record<Kind, ReturnType<typeof comparable>[]> = { 'unknown user': [], 'wrong password': [], 'disabled user': [] }

    const before = await snapshot(app)
    for (let round = 0; round < WARM_UP + ROUNDS; round++) {
      // Rotate which kind goes first, so no kind always follows the same one.
      const order = (Object.keys(kinds) as Kind[]).map((_, i, all) => all[(i + round) % all.length]!)
      for (const kind of order) {
        const [username, password] = kinds[kind](round)
        const { response, ms } = await timedLogin(app, username, password, `10.0.${round}.${order.indexOf(kind) + 1}`)
        if (round < WARM_UP) continue
        times[kind].push(ms)
        answers[kind].push(comparable(response))
      }
    }
    t.equal(await snapshot(app), before, 'no row changed (no session was started)')

    await t.test('the same status, body and headers for every kind', async (t) => {
      const reference = answers['wrong password'][0]!
      t.equal(reference.statusCode, 401)
      t.match(JSON.parse(reference.body), { statusCode: 401, code: 'AUTH_INVALID_CREDENTIALS' })
      for (const kind of Object.keys(answers) as Kind[]) {
        for (const [round, answer] of answers[kind].entries()) t.same(answer, reference, `${kind}, round ${round}`)
      }
    })

    await t.test(`the median times differ by at most ${MAX_MEDIAN_DIFFERENCE * 100}%`, async (t) => {
      const reference = median(times['wrong password'])
      for (const kind of ['unknown user', 'disabled user'] as Kind[]) {
        const other = median(times[kind])
        const difference = Math.abs(other - reference) / Math.min(other, reference)
        t.ok(difference <= MAX_MEDIAN_DIFFERENCE,
          `${kind}: median ${other.toFixed(1)} ms vs wrong password ${reference.toFixed(1)} ms (${(difference * 100).toFixed(1)}% apart)`)
      }
      // The comparison means something only if a login does real work (argon2), not a shortcut.
      t.ok(reference > 5, `a wrong password takes real hashing time (${reference.toFixed(1)} ms)`)
    })

    await t.test('control: the right password still logs in', async (t) => {
      const response = await app.inject({ method: 'POST', url: '/auth/login', payload: { username: known.username, password: PASSWORD } })
      t.equal(response.statusCode, 200)
    })
  })
}
