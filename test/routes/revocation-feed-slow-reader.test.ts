// The revocation stream and a reader that stops reading: it is paused with bounded unsent bytes and
// then let go, while a reading subscriber gets every event once. (Its own file: it is the slowest.)
import { connect } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { testDatabases } from '../helpers.js'
import { ORDERS, feedApp, openStream } from './feed-support.js'

for (const database of testDatabases()) {
  t.test(`a reader that stops reading holds bounded memory and is cut off; the others get everything (${database})`, async (t) => {
    const { app, base } = await feedApp(t, database, { REVOCATION_STREAM_HEARTBEAT: '2' })
    const fast = await openStream(base)
    await fast.until(() => fast.lastId !== undefined)
    // A raw client that asks for the stream and then never reads.
    const { port } = new URL(base)
    const slow = connect(Number(port), '127.0.0.1')
    slow.write(`GET /oauth/revocations/stream HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: ${ORDERS}\r\n\r\n`)
    slow.once('data', () => slow.pause())
    slow.on('error', () => {})
    await sleep(300)
    // Revocations in bursts small enough for a reading client to keep up with, large in sum.
    const total = 1200
    const burst = 20
    // Dated past the commit lag, so each poll of the revocation list reads only the new rows.
    const now = Date.now() - 11_000
    let largestPausedBuffer = 0
    let pausedSeen = 0
    for (let offset = 0; offset < total; offset += burst) {
      await app.db.revocationEvent.createMany({
        data: Array.from({ length: burst }, (_, index) => ({
          kind: 'session', subject: `bulk-session-${offset + index}-${'x'.repeat(8000)}`, tokenVersion: null,
          createdAt: new Date(now), relevantUntil: new Date(now + 600_000)
        }))
      })
      await app.revocations.poll()
      for (const stream of app.revocationFeed.streams) {
        const { mode, unsentBytes } = stream.stats()
        if (mode === 'paused') { pausedSeen++; largestPausedBuffer = Math.max(largestPausedBuffer, unsentBytes) }
      }
      await sleep(50)
    }
    await fast.until(() => fast.events().length >= total, 60_000)
    t.equal(fast.events().length, total, 'the reading subscriber got every event')
    t.equal(new Set(fast.events().map((event) => event.id)).size, total, 'each once')
    t.ok(pausedSeen > 0, 'the stalled subscriber was paused')
    t.ok(largestPausedBuffer <= 256 * 1024 + 16 * 1024, `a paused subscriber held at most ${largestPausedBuffer} unsent bytes, not the ${total} events`)
    // The server lets go of it (the client, not reading, may not notice yet).
    const started = Date.now()
    while (app.revocationFeed.streams.size > 1 && Date.now() - started < 10_000) await sleep(50)
    t.equal(app.revocationFeed.streams.size, 1, 'the stalled subscriber was disconnected; the reading one stays')
    slow.destroy()
    await fast.close()
  })
}
