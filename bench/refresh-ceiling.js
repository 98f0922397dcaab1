// The stack's own ceiling for refresh: the server's SessionService.refresh (the same store functions,
// statements and transaction as POST /auth/refresh, built by the server's own code over a Prisma
// client on the same database) called in a loop, with no HTTP. Runs as a child of bench/run.js with
// the auth server's environment, so its CPU is counted like the server's; driven over IPC:
//   → { type: 'run', tokens: [refresh token per chain], seconds }   ← { type: 'result', outcome }
// Every chain presents the token its previous rotation returned, as the HTTP scenario's connections do.
import { chainSpread, percentile, round } from './lib/load.js'
import { buildSessionDomain, serverConfig } from './lib/server-internals.js'

const config = await serverConfig(process.env, process.cwd())
const { sessions, close } = await buildSessionDomain(config)

/** `tokens.length` chains, each rotating its own token back to back for `seconds`. */
async function rotateChains (tokens, seconds) {
  const latencies = []
  const breaks = {}
  const start = performance.now()
  const deadline = start + seconds * 1000
  const perChain = tokens.map(() => 0)
  async function chain (first, index) {
    let token = first
    while (performance.now() < deadline) {
      const started = performance.now()
      try {
        token = (await sessions.refresh(token)).refreshToken
        perChain[index]++
        latencies.push(performance.now() - started)
      } catch (error) {
        const code = error?.code ?? error?.name ?? 'error'
        breaks[code] = (breaks[code] ?? 0) + 1
      }
    }
  }
  await Promise.all(tokens.map(chain))
  const elapsed = (performance.now() - start) / 1000
  latencies.sort((a, b) => a - b)
  const errors = Object.values(breaks).reduce((sum, count) => sum + count, 0)
  return {
    connections: tokens.length,
    seconds: elapsed,
    requests: latencies.length,
    p50: round(percentile(latencies, 50), 2),
    p99: round(percentile(latencies, 99), 2),
    max: round(latencies[latencies.length - 1] ?? NaN, 2),
    errors,
    breaks,
    chains: chainSpread(perChain)
  }
}

process.on('message', (message) => {
  if (message?.type !== 'run') return process.send({ type: 'error', message: `unknown message ${JSON.stringify(message)}` })
  rotateChains(message.tokens, message.seconds).then(
    (outcome) => process.send({ type: 'result', outcome }),
    (error) => process.send({ type: 'error', message: String(error?.stack ?? error) })
  )
})
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.once(signal, () => { close().finally(() => process.exit(0)) })
}
process.send({ type: 'ready' })
