// DPoP glue (RFC 9449): reads a request's `DPoP` header and checks the proof against that request
// (src/auth/dpop.ts does the checks). The token endpoints and the access-token check ask it; while
// DPOP_NONCE=true every response carries a fresh `DPoP-Nonce`.
import cluster from 'node:cluster'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import {
  DPOP_ALGORITHMS, DpopNonces, DpopVerifier, MemoryReplayStore, RedisReplayStore,
  type DpopMode, type VerifiedProof
} from '../auth/dpop.js'
import type { Clock } from '../auth/token-rules.js'
import type { Config } from '../config.js'
import { DpopInvalid } from '../errors.js'

export interface DpopService {
  mode: DpopMode
  /** The proof algorithms accepted (the metadata's dpop_signing_alg_values_supported). */
  algorithms: string[]
  /** The request's URL as a proof's htu must name it: PUBLIC_URL + the path, without the query. */
  requestUrl: (request: FastifyRequest) => string
  /**
   * The request's proof, checked against it (and against `accessToken` / `thumbprint` when given);
   * null when it carries none. Throws DpopInvalid, DpopNonceRequired or ServiceUnavailable.
   */
  proofOf: (request: FastifyRequest, bound?: { accessToken?: string, thumbprint?: string }) => Promise<VerifiedProof | null>
  /** Whether the request carries a DPoP header at all. */
  hasProof: (request: FastifyRequest) => boolean
  /**
   * For a request that starts a session (login, the password grant): the thumbprint the session is
   * bound to, if it came with a valid proof. DPOP=off ignores the header; DPOP=required refuses a
   * request without one.
   */
  bindingOf: (request: FastifyRequest) => Promise<string | undefined>
  /**
   * For a refresh: the proof's thumbprint (the domain compares it with the session's binding) and
   * whether a session without a binding is refused. A proof sent is checked whatever the mode, as
   * sessions bound before DPOP=off stay bound.
   */
  refreshContextOf: (request: FastifyRequest) => Promise<{ dpopThumbprint: string | undefined, requireDpop: boolean }>
}

declare module 'fastify' {
  interface FastifyInstance {
    dpop: DpopService
  }
  interface FastifyContextConfig {
    /** The route takes a DPoP proof that binds or renews a session (login, refresh, /oauth/token). */
    dpop?: boolean
  }
}

const MAX_REMEMBERED_PROOFS = 100_000

export default fp(async function dpop (fastify, { config, clock }: { config: Config, clock: Clock }) {
  const local = new MemoryReplayStore(clock, MAX_REMEMBERED_PROOFS)
  if (fastify.redis === null && cluster.isWorker && config.dpop.mode !== 'off') {
    fastify.log.warn('REDIS_URL is not set: each worker remembers DPoP proofs on its own, so a proof could be replayed once to another worker within DPOP_PROOF_WINDOW')
  }
  const replays = fastify.redis === null
    ? local
    : new RedisReplayStore(fastify.redis, local, (error) => fastify.log.warn({ err: error }, 'DPoP replay check fell back to this instance (Redis unreachable)'))
  const nonces = config.dpop.nonce ? new DpopNonces(config.jwt.secret, clock) : null
  const verifier = new DpopVerifier({ clock, windowSeconds: config.dpop.proofWindow, replays, nonces })

  const requestUrl = (request: FastifyRequest): string => config.publicUrl + request.url.split(/[?#]/, 1)[0]
  const hasProof = (request: FastifyRequest): boolean => request.headers.dpop !== undefined
  const service: DpopService = {
    mode: config.dpop.mode,
    algorithms: DPOP_ALGORITHMS,
    requestUrl,
    hasProof,
    async proofOf (request, bound = {}) {
      const header = request.headers.dpop
      if (header === undefined) return null
      // Node joins repeated headers with ", "; a compact JWS never has a comma (RFC 9449 §4.3 step 1).
      if (typeof header !== 'string' || header.includes(',')) throw new DpopInvalid('Send exactly one DPoP header')
      return verifier.verify(header.trim(), { method: request.method, url: requestUrl(request), ...bound })
    },
    async bindingOf (request) {
      if (config.dpop.mode === 'off') return undefined
      const proof = await service.proofOf(request)
      if (proof === null && config.dpop.mode === 'required') throw new DpopInvalid('This server requires a DPoP proof (RFC 9449) to start a session')
      return proof?.thumbprint
    },
    async refreshContextOf (request) {
      const proof = await service.proofOf(request)
      return { dpopThumbprint: proof?.thumbprint, requireDpop: config.dpop.mode === 'required' }
    }
  }
  fastify.decorate('dpop', service)

  if (nonces !== null) {
    // RFC 9449 §8.2: a server may hand out the next nonce on any response; clients keep the latest.
    fastify.addHook('onSend', async (_request, reply) => {
      void reply.header('dpop-nonce', nonces.current())
    })
  }
}, { name: 'dpop', dependencies: ['redis'] })

declare module 'fastify' {
  interface FastifyRequest {
    /** The access token came as `Authorization: DPoP` (its failures challenge with the DPoP scheme). */
    dpopScheme?: boolean
  }
}

