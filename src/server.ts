// Entry point: read the configuration, build the app, listen; finish in-flight requests and close the
// database on SIGTERM/SIGINT.
import closeWithGrace from 'close-with-grace'
import { buildApp } from './app.js'
import { ConfigError, loadConfig } from './config.js'

try {
  process.loadEnvFile()
} catch {
  // No .env file: the environment alone configures the server.
}

let config
try {
  config = loadConfig()
} catch (error) {
  if (!(error instanceof ConfigError)) throw error
  console.error(error.message)
  process.exit(1)
}

const app = await buildApp(config)
closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
  if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
  else app.log.info({ signal }, 'shutting down')
  // Requests in flight finish; their keep-alive sockets are closed as soon as they fall idle,
  // rather than holding the process open until the keep-alive timeout.
  const reapIdle = setInterval(() => app.server.closeIdleConnections(), 50)
  await app.close()
  clearInterval(reapIdle)
})
await app.listen({ host: config.host, port: config.port })
