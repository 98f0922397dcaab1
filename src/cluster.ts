// `npm run start:cluster`: one worker per core (or WORKERS), sharing the port. The primary applies
// migrations once, restarts workers that die, and relays the revocation doorbell between workers so a
// logout on one worker is refused by the others at once.
import cluster from 'node:cluster'
import { type Server, createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { AggregatorRegistry } from 'prom-client'
import { ConfigError, loadConfig } from './config.js'
import { applyMigrations } from './db/migrate.js'
import { DOORBELL_MESSAGE } from './plugins/revocation-doorbell.js'

try {
  process.loadEnvFile()
} catch {}

let config
try {
  config = loadConfig()
  await applyMigrations(config.database)
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : error)
  process.exit(1)
}

// Workers do not open METRICS_PORT themselves (src/plugins/metrics.ts): the primary answers with the
// sum of their registries, so one scrape sees the whole machine.
let metricsServer: Server | undefined
if (config.metricsPort !== undefined) {
  const aggregator = new AggregatorRegistry()
  metricsServer = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at GET /metrics\n')
      return
    }
    aggregator.clusterMetrics().then((text) => {
      response.writeHead(200, { 'content-type': aggregator.contentType }).end(text)
    }, (error: unknown) => {
      console.error('collecting metrics from the workers failed', error)
      response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n')
    })
  }).listen({ host: config.host, port: config.metricsPort })
}

cluster.setupPrimary({ exec: fileURLToPath(new URL('./server.js', import.meta.url)) })
let stopping = false
const fork = () => {
  const worker = cluster.fork()
  worker.on('message', (message: unknown) => {
    if (message !== DOORBELL_MESSAGE) return
    for (const other of Object.values(cluster.workers ?? {})) if (other !== undefined && other !== worker) other.send(DOORBELL_MESSAGE)
  })
}
cluster.on('exit', (worker, code, signal) => {
  if (stopping) return
  console.error(`worker ${worker.process.pid} exited (${signal ?? code}); starting another`)
  fork()
})
for (let i = 0; i < config.workers; i++) fork()

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    stopping = true
    // Once the workers are gone nothing else keeps the primary alive.
    metricsServer?.close()
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal)
  })
}
