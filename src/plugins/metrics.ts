// Prometheus metrics (prom-client) on their own listener, HOST:METRICS_PORT/metrics, so the API port
// never serves them. One registry per app (tests build many apps in one process). Auth outcomes come
// from the auth event hub; the domain has no metric calls. Labels hold fixed words and route
// patterns, never user data or a raw URL.
//
// Under `npm run start:cluster` a worker does not listen: the primary serves the sum of every
// worker's registry (prom-client's AggregatorRegistry, see src/cluster.ts).
import cluster from 'node:cluster'
import { type Server, createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { LoginOutcome, RateLimiter, RefreshOutcome } from '../auth/events.js'
import { RequestDurationHistogram } from './request-duration.js'

declare module 'fastify' {
  interface FastifyInstance {
    metrics: {
      registry: Registry
      /** Where the metrics listener listens (after ready); null when it does not (cluster worker). */
      address: () => AddressInfo | null
    }
  }
}

export interface MetricsOptions { host: string, port: number }

const LOGIN_OUTCOMES: LoginOutcome[] = ['ok', 'failed', 'locked']
const REFRESH_OUTCOMES: RefreshOutcome[] = ['rotated', 'replayed', 'reused', 'invalid', 'expired', 'refused']
const RATE_LIMITERS: RateLimiter[] = ['login-lockout', 'requests']
const REVOCATION_REASONS = ['logout', 'logout-all', 'deleted', 'reuse', 'password-change']
/** The route label of requests that matched no route (404s): a raw URL would be unbounded and could carry data. */
export const UNMATCHED_ROUTE = 'unmatched'

export default fp(async function metrics (fastify, { host, port }: MetricsOptions) {
  const registry = new Registry()
  const registers = [registry]
  collectDefaultMetrics({ register: registry })

  const logins = new Counter({ name: 'auth_logins_total', help: 'Login attempts by outcome (ok, failed, locked).', labelNames: ['outcome'], registers })
  const refreshes = new Counter({ name: 'auth_refreshes_total', help: 'Refresh-token presentations by outcome.', labelNames: ['outcome'], registers })
  const revocations = new Counter({ name: 'auth_revocations_total', help: 'Revocations written by this instance, by reason.', labelNames: ['reason'], registers })
  const rateLimited = new Counter({ name: 'auth_rate_limited_total', help: 'Requests refused with 429, by limiter.', labelNames: ['limiter'], registers })
  // Every known series exists from the start at 0, so rate() and alerts work before the first event.
  for (const outcome of LOGIN_OUTCOMES) logins.inc({ outcome }, 0)
  for (const outcome of REFRESH_OUTCOMES) refreshes.inc({ outcome }, 0)
  for (const reason of REVOCATION_REASONS) revocations.inc({ reason }, 0)
  for (const limiter of RATE_LIMITERS) rateLimited.inc({ limiter }, 0)
  fastify.authEvents.subscribe((event) => {
    switch (event.type) {
      case 'login': logins.inc({ outcome: event.outcome }); break
      case 'refresh': refreshes.inc({ outcome: event.outcome }); break
      case 'revocation': revocations.inc({ reason: event.reason }); break
      case 'rate-limited': rateLimited.inc({ limiter: event.limiter }); break
    }
  })

  const { passwordHasher, revocations: revocationList } = fastify
  const hashDuration = new Histogram({
    name: 'auth_password_hash_duration_seconds',
    help: 'Time of one argon2id hash or verification, queueing excluded.',
    buckets: [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5],
    registers
  })
  passwordHasher.onHashed = (seconds) => hashDuration.observe(seconds)
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'auth_password_hash_queue_length',
    help: 'Password hashes waiting for a free slot (PASSWORD_HASH_CONCURRENCY).',
    registers,
    collect () { this.set(passwordHasher.queued) }
  })
  // eslint-disable-next-line no-new
  new Gauge({
    name: 'auth_revocation_list_entries',
    help: 'Revoked sessions and users\' minimum token versions held in this instance\'s memory.',
    registers,
    // Every instance holds the same list: the cluster sum would count it once per worker.
    aggregator: 'max',
    collect () {
      const { sessions, users } = revocationList.size
      this.set(sessions + users)
    }
  })
  const propagation = new Histogram({
    name: 'auth_revocation_propagation_seconds',
    help: 'From a revocation event being written to it taking effect on this instance.',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers
  })
  revocationList.onPropagated((lagMs) => propagation.observe(lagMs / 1000))

  const requestDuration = new RequestDurationHistogram({
    name: 'http_request_duration_seconds',
    help: 'Time to answer an HTTP request, by method, route pattern and status code.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers
  })
  fastify.addHook('onResponse', function observeRequestDuration (request: FastifyRequest, reply: FastifyReply, done) {
    requestDuration.observe(request.method, request.is404 ? UNMATCHED_ROUTE : request.routeOptions.url ?? UNMATCHED_ROUTE, reply.statusCode, reply.elapsedTime / 1000)
    done()
  })

  let server: Server | undefined
  if (cluster.isWorker) {
    // Constructing one is what makes prom-client answer the primary's requests in this worker.
    // eslint-disable-next-line no-new
    new AggregatorRegistry()
    AggregatorRegistry.setRegistries([registry])
  } else {
    server = createServer((request, response) => {
      if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
        response.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at GET /metrics\n')
        return
      }
      registry.metrics().then((text) => {
        response.writeHead(200, { 'content-type': registry.contentType }).end(text)
      }, (error: unknown) => {
        fastify.log.error({ err: error }, 'collecting metrics failed')
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n')
      })
    })
    fastify.addHook('onReady', async () => {
      await new Promise<void>((resolve, reject) => {
        server!.once('error', reject)
        server!.listen({ host, port }, () => {
          server!.off('error', reject)
          resolve()
        })
      })
      fastify.log.info({ address: server!.address() }, 'metrics listening')
    })
    fastify.addHook('onClose', async () => {
      if (!server!.listening) return
      server!.closeAllConnections()
      await new Promise<void>((resolve) => server!.close(() => resolve()))
    })
  }

  fastify.decorate('metrics', {
    registry,
    address: () => (server?.address() as AddressInfo | null | undefined) ?? null
  })
}, { name: 'metrics', dependencies: ['auth-domain', 'auth-events'] })
