// An open-loop load at a steady rate, for latency under a fixed offered load. autocannon's rate
// option sends each connection's per-second budget in a burst at the start of every second, which
// measures queueing behind the burst rather than the server; here requests leave evenly spaced and
// each latency is timed with sub-millisecond resolution.
// The CPU accounting around it is the caller's (measureCpu in load.js), as for every other load.
import http from 'node:http'
import { percentile, round } from './load.js'

/**
 * Sends GET `url` at `rate` requests a second for `seconds`, over at most `connections` keep-alive
 * sockets, each request carrying the next of `accessTokens` (round-robin). Latency runs from the
 * moment a request is handed to the socket pool to the end of its answer, so a request that waits
 * for a free socket counts its wait.
 */
export async function pacedLoad ({ url, rate, seconds, connections, accessTokens }) {
  const target = new URL(url)
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections })
  const latencies = []
  let errors = 0
  let sent = 0
  let inFlight = 0
  let next = 0

  let settle
  const drained = new Promise((resolve) => { settle = resolve })
  let sending = true
  const done = () => {
    inFlight--
    if (!sending && inFlight === 0) settle()
  }

  function send () {
    const started = performance.now()
    inFlight++
    sent++
    const request = http.get({
      agent,
      host: target.hostname,
      port: target.port,
      path: target.pathname,
      headers: { authorization: `Bearer ${accessTokens[next++ % accessTokens.length]}` }
    }, (response) => {
      response.resume()
      response.on('end', () => {
        if (response.statusCode === 200) latencies.push(performance.now() - started)
        else errors++
        done()
      })
    })
    request.on('error', () => {
      errors++
      done()
    })
  }

  const start = performance.now()
  await new Promise((resolve) => {
    const tick = () => {
      const elapsed = performance.now() - start
      if (elapsed >= seconds * 1000) return resolve()
      const due = Math.floor((elapsed / 1000) * rate)
      while (sent < due) send()
      setTimeout(tick, 1)
    }
    tick()
  })
  sending = false
  if (inFlight > 0) await drained
  const elapsedSeconds = (performance.now() - start) / 1000
  agent.destroy()

  latencies.sort((a, b) => a - b)
  return {
    connections,
    seconds: elapsedSeconds,
    requests: latencies.length,
    p50: round(percentile(latencies, 50), 2),
    p99: round(percentile(latencies, 99), 2),
    max: round(latencies[latencies.length - 1] ?? NaN, 2),
    errors
  }
}
