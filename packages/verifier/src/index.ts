// @auth-server/verifier: verify the auth server's access tokens in another service, with the same
// guarantees as the server's own routes. Signatures are checked against the JWKS (cached, refetched
// on an unknown kid, at most once per cooldown); revocations come from the server's revocation feed
// (a snapshot, then the live stream, resumed from its cursor after any drop). While the feed has been
// silent longer than `maxStalenessMs`, verify() fails closed.
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify } from 'jose'
import { RevocationFollower, RevocationState } from './revocations.js'
import { type DpopOptions, type ProofChecker, DpopProofError, ReplayStoreFullError, createProofChecker, dpopChallenge } from './dpop.js'

export type { RevocationEvent } from './revocations.js'
export { accessTokenHash, memoryReplayStore, redisReplayStore, timeStepNonces, DEFAULT_DPOP_ALGORITHMS } from './dpop.js'
export type { DpopOptions, DpopReplayStore, DpopNonceSource, RedisSetNx } from './dpop.js'

export interface VerifierOptions {
  /** The server's issuer (JWT_ISSUER): checked in every token, and where its RFC 8414 metadata is found. */
  issuer: string
  /** The audience tokens must carry (JWT_AUDIENCE). */
  audience: string | string[]
  /** Default: the metadata's jwks_uri. */
  jwksUri?: string
  /** The revocation feed's snapshot URL (…/oauth/revocations). Default: from the metadata. */
  revocationsUrl?: string
  /** This service's entry in the server's RESOURCE_SERVERS (HTTP Basic for the feed). */
  clientId?: string
  clientSecret?: string
  /** Set to false to verify signatures only (logged-out tokens are then accepted until they expire). */
  checkRevocations?: boolean
  /** Refuse every token (AUTH_VERIFIER_UNAVAILABLE) once the feed has been silent this long. Default 30 000. */
  maxStalenessMs?: number
  /** How long verify() waits for the first snapshot before failing closed. Default 5 000. */
  readyTimeoutMs?: number
  /** Accepted signing algorithms. Default EdDSA and ES256 (an HS256 secret is never published). */
  algorithms?: string[]
  /** Seconds of clock skew allowed on exp/nbf/iat. Default 0. */
  clockToleranceSeconds?: number
  /** Minimum time between two JWKS fetches for unknown kids (no refetch storm). Default 30 000. */
  jwksCooldownMs?: number
  reconnectDelayMs?: { min: number, max: number }
  /** Called with feed and JWKS problems (nothing secret in them). Default: silent. */
  onError?: (error: Error) => void
  fetch?: typeof fetch
  /**
   * DPoP (RFC 9449): tokens bound to a key (`cnf.jkt`) are accepted only as `Authorization: DPoP`
   * with a valid proof, and never as Bearer. Default on, with the defaults of DpopOptions; `false`
   * refuses every bound token.
   */
  dpop?: DpopOptions | false
}

/** The claims of a verified access token (the server's RFC 9068 profile). */
export interface AccessTokenClaims {
  iss: string
  aud: string | string[]
  sub: string
  sid: string
  ver: number
  jti: string
  iat: number
  exp: number
  client_id?: string
  preferred_username?: string
  /** RFC 7800 confirmation: `jkt` is the thumbprint of the key a DPoP-bound token is bound to. */
  cnf?: { jkt?: string }
  [claim: string]: unknown
}

export type VerifierErrorCode = 'AUTH_TOKEN_MISSING' | 'AUTH_TOKEN_INVALID' | 'AUTH_TOKEN_EXPIRED' | 'AUTH_TOKEN_REVOKED' | 'AUTH_DPOP_INVALID' | 'AUTH_DPOP_NONCE' | 'AUTH_VERIFIER_UNAVAILABLE'

/**
 * Why a token was refused, with the server's error code and the HTTP status to answer with.
 * `challenges` are the `WWW-Authenticate` values to send (RFC 6750, RFC 9449 §7.1), one header each;
 * `dpopNonce`, when set, goes out as the `DPoP-Nonce` header.
 */
export class VerifierError extends Error {
  readonly statusCode: 401 | 503
  challenges: string[] = []
  dpopNonce: string | undefined
  constructor (readonly code: VerifierErrorCode, message: string) {
    super(message)
    this.name = 'VerifierError'
    this.statusCode = code === 'AUTH_VERIFIER_UNAVAILABLE' ? 503 : 401
  }
}

/** What verifyRequest needs of an HTTP request. */
export interface RequestToVerify {
  method: string
  /** The absolute URL the client addressed (the service's public origin + path); query and fragment are ignored. */
  url: string
  /** Node's IncomingHttpHeaders or a fetch Headers object. */
  headers: Headers | Record<string, string | string[] | undefined>
}

export interface VerifierStatus {
  /** The revocation stream is connected. */
  connected: boolean
  /** The feed's position (the stream's last id). */
  cursor: string | undefined
  /** When the verifier last knew it was up to date (ms since the epoch; 0 before the first snapshot). */
  freshAt: number
  revoked: { sessions: number, users: number }
}

export interface Verifier {
  /**
   * A token sent as `Authorization: Bearer`: resolves with the claims of a valid, unrevoked, unbound
   * access token; rejects with a VerifierError (a DPoP-bound token is refused: it needs its proof).
   */
  verify: (token: string) => Promise<AccessTokenClaims>
  /** A token sent as `Authorization: DPoP` with its proof (the `DPoP` header), for `method` on `url`. */
  verifyDpop: (token: string, proof: string | undefined, request: { method: string, url: string }) => Promise<AccessTokenClaims>
  /** Reads `Authorization` (Bearer or DPoP) and `DPoP` from a request and verifies what it finds. */
  verifyRequest: (request: RequestToVerify) => Promise<AccessTokenClaims>
  /** Whether DPoP-bound tokens can be accepted (the `dpop` option is not false). */
  readonly dpopEnabled: boolean
  /** The nonce clients must put in their proofs now, while `dpop.nonce` is set. */
  dpopNonce: () => string | undefined
  /** Resolves once metadata is read and the first revocation snapshot is applied. */
  ready: () => Promise<void>
  status: () => VerifierStatus
  /** Stops following the feed. */
  close: () => Promise<void>
}

interface Metadata { issuer: string, jwks_uri?: string, revocation_feed_endpoint?: string }

/** RFC 8414 §3: /.well-known/oauth-authorization-server inserted between the host and the issuer's path. */
export function metadataUrl (issuer: string): string {
  const url = new URL(issuer)
  const path = url.pathname.replace(/\/+$/, '')
  return `${url.origin}/.well-known/oauth-authorization-server${path}`
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded. */
function basicAuthorization (id: string, secret: string): string {
  const encode = (value: string) => encodeURIComponent(value).replace(/%20/g, '+')
  return `Basic ${Buffer.from(`${encode(id)}:${encode(secret)}`).toString('base64')}`
}

async function discover (issuer: string, fetchImpl: typeof fetch): Promise<Metadata> {
  const url = metadataUrl(issuer)
  const response = await fetchImpl(url, { headers: { accept: 'application/json' } })
  if (!response.ok) throw new Error(`${url} answered ${response.status}`)
  const metadata = await response.json() as Metadata
  // RFC 8414 §3.3: the metadata must be the issuer's own.
  if (metadata.issuer !== issuer) throw new Error(`${url} names issuer ${String(metadata.issuer)}, not ${issuer}`)
  return metadata
}

const REQUIRED_CLAIMS = ['sub', 'sid', 'ver', 'jti', 'iat', 'exp']

export function createVerifier (options: VerifierOptions): Verifier {
  const fetchImpl = options.fetch ?? globalThis.fetch
  const checkRevocations = options.checkRevocations ?? true
  const maxStalenessMs = options.maxStalenessMs ?? 30_000
  const readyTimeoutMs = options.readyTimeoutMs ?? 5_000
  const onError = options.onError ?? (() => {})
  if (checkRevocations && (options.clientId === undefined || options.clientSecret === undefined)) {
    throw new TypeError('createVerifier: clientId and clientSecret (an entry of the server\'s RESOURCE_SERVERS) are required to follow revocations; pass checkRevocations: false to verify signatures only')
  }
  const state = new RevocationState()
  let follower: RevocationFollower | undefined
  let closed = false
  const prune = setInterval(() => state.prune(), 60_000)
  prune.unref()

  // The server may be down when the service starts: metadata is read again (with a growing delay)
  // until it answers; verify() fails closed meanwhile.
  const discoverUntilFound = async (): Promise<Metadata | undefined> => {
    const { min, max } = options.reconnectDelayMs ?? { min: 100, max: 5_000 }
    for (let delay = min; !closed; delay = Math.min(delay * 2, max)) {
      try {
        return await discover(options.issuer, fetchImpl)
      } catch (error) {
        onError(error as Error)
        await new Promise((resolve) => setTimeout(resolve, delay).unref())
      }
    }
    return undefined
  }

  const setup = (async () => {
    const metadata = options.jwksUri !== undefined && (!checkRevocations || options.revocationsUrl !== undefined)
      ? undefined
      : await discoverUntilFound()
    const jwksUri = options.jwksUri ?? metadata?.jwks_uri
    if (jwksUri === undefined) throw new Error(`no jwks_uri for ${options.issuer}`)
    const jwks = createRemoteJWKSet(new URL(jwksUri), {
      cooldownDuration: options.jwksCooldownMs ?? 30_000,
      cacheMaxAge: 10 * 60_000,
      [customFetch]: fetchImpl
    })
    if (checkRevocations && !closed) {
      const url = options.revocationsUrl ?? metadata?.revocation_feed_endpoint
      if (url === undefined) throw new Error(`no revocation feed for ${options.issuer}; pass revocationsUrl`)
      follower = new RevocationFollower(state, {
        url,
        authorization: basicAuthorization(options.clientId!, options.clientSecret!),
        fetch: fetchImpl,
        // The server sends a comment at least every 15 s.
        idleTimeoutMs: 20_000,
        reconnectDelayMs: options.reconnectDelayMs ?? { min: 100, max: 5_000 },
        onError
      })
    }
    return jwks
  })()
  setup.catch(onError)

  const ready = async () => {
    await setup
    await follower?.ready
  }

  async function withinReadyTimeout (): Promise<Awaited<typeof setup>> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The auth server\'s keys or revocation feed are not available yet')), readyTimeoutMs)
    })
    try {
      await Promise.race([ready().catch(() => new Promise<never>(() => {})), timeout])
      return await setup
    } finally {
      clearTimeout(timer)
    }
  }

  const dpop: ProofChecker | undefined = options.dpop === false ? undefined : createProofChecker(options.dpop)
  const bearerAccepted = dpop?.required !== true
  const dpopHint = dpop === undefined ? [] : [dpopChallenge(dpop.algorithms)]

  /**
   * A refusal with its challenges (RFC 6750 §3, RFC 9449 §7.1), in the scheme the client used: none
   * (no credentials: every scheme this service takes), Bearer, or DPoP.
   */
  function refusal (code: VerifierErrorCode, message: string, scheme: 'Bearer' | 'DPoP' | undefined, error?: 'invalid_token' | 'invalid_dpop_proof' | 'use_dpop_nonce'): VerifierError {
    const refused = new VerifierError(code, message)
    if (scheme === undefined || error === undefined) refused.challenges = [...(bearerAccepted ? ['Bearer'] : []), ...dpopHint]
    else if (scheme === 'Bearer') refused.challenges = [`Bearer error="${error}"`]
    else refused.challenges = [dpopChallenge(dpop?.algorithms ?? [], error, message)]
    return refused
  }

  /** Signature, claims and revocations: what every token must pass, however it was sent. */
  async function checkToken (token: string, scheme: 'Bearer' | 'DPoP'): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token === '') throw refusal('AUTH_TOKEN_MISSING', 'An access token is required', scheme)
    const jwks = await withinReadyTimeout()
    let payload: AccessTokenClaims
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: options.issuer,
        audience: options.audience,
        typ: 'at+jwt',
        algorithms: options.algorithms ?? ['EdDSA', 'ES256'],
        requiredClaims: REQUIRED_CLAIMS,
        clockTolerance: options.clockToleranceSeconds ?? 0
      }) as unknown as { payload: AccessTokenClaims })
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) throw refusal('AUTH_TOKEN_EXPIRED', 'The access token has expired', scheme, 'invalid_token')
      if (error instanceof joseErrors.JOSEError && !(error instanceof joseErrors.JWKSTimeout)) {
        throw refusal('AUTH_TOKEN_INVALID', 'The access token is invalid', scheme, 'invalid_token')
      }
      // The JWKS could not be fetched: the token may be fine, the answer is not known.
      onError(error as Error)
      throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The auth server\'s keys are not available')
    }
    if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || !Number.isSafeInteger(payload.ver)) {
      throw refusal('AUTH_TOKEN_INVALID', 'The access token is invalid', scheme, 'invalid_token')
    }
    if (payload.cnf !== undefined && (typeof payload.cnf !== 'object' || payload.cnf === null || (payload.cnf.jkt !== undefined && typeof payload.cnf.jkt !== 'string'))) {
      throw refusal('AUTH_TOKEN_INVALID', 'The access token is invalid', scheme, 'invalid_token')
    }
    if (follower !== undefined) {
      if (Date.now() - follower.freshAt > maxStalenessMs) {
        throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The revocation feed is out of date; refusing tokens until it is back')
      }
      if (state.isRevoked(payload)) throw refusal('AUTH_TOKEN_REVOKED', 'The access token has been revoked', scheme, 'invalid_token')
    }
    return payload
  }

  async function verify (token: string): Promise<AccessTokenClaims> {
    if (!bearerAccepted) {
      if (typeof token !== 'string' || token === '') throw refusal('AUTH_TOKEN_MISSING', 'An access token is required', undefined)
      throw refusal('AUTH_DPOP_INVALID', 'This service accepts DPoP-bound tokens only: send Authorization: DPoP with a proof', 'DPoP', 'invalid_token')
    }
    const claims = await checkToken(token, 'Bearer')
    // RFC 9449 §7.2: a bound token used as a bearer token would undo the binding.
    if (claims.cnf?.jkt !== undefined) {
      throw refusal('AUTH_DPOP_INVALID', 'The access token is DPoP-bound: send it as Authorization: DPoP with a proof', 'DPoP', 'invalid_token')
    }
    return claims
  }

  async function verifyDpop (token: string, proof: string | undefined, request: { method: string, url: string }): Promise<AccessTokenClaims> {
    if (dpop === undefined) throw refusal('AUTH_TOKEN_MISSING', 'This service does not accept DPoP tokens', undefined)
    const claims = await checkToken(token, 'DPoP')
    if (proof === undefined || proof === '') throw refusal('AUTH_DPOP_INVALID', 'A DPoP proof is required with a DPoP token', 'DPoP', 'invalid_dpop_proof')
    let checked
    try {
      checked = await dpop.check(proof, { method: request.method, url: request.url, accessToken: token })
    } catch (error) {
      if (!(error instanceof DpopProofError)) throw error
      if (error.error === 'use_dpop_nonce') {
        const refused = refusal('AUTH_DPOP_NONCE', error.message, 'DPoP', 'use_dpop_nonce')
        refused.dpopNonce = dpop.nonce?.current()
        throw refused
      }
      throw refusal('AUTH_DPOP_INVALID', error.message, 'DPoP', 'invalid_dpop_proof')
    }
    // §7.1: the proof must be made with the key the token is bound to.
    if (claims.cnf?.jkt === undefined) throw refusal('AUTH_DPOP_INVALID', 'The access token is not DPoP-bound: send it as Bearer', 'DPoP', 'invalid_token')
    if (claims.cnf.jkt !== checked.jkt) throw refusal('AUTH_DPOP_INVALID', 'The DPoP proof is not signed by the key the access token is bound to', 'DPoP', 'invalid_dpop_proof')
    try {
      await dpop.spend(checked)
    } catch (error) {
      if (error instanceof DpopProofError) throw refusal('AUTH_DPOP_INVALID', error.message, 'DPoP', 'invalid_dpop_proof')
      if (error instanceof ReplayStoreFullError) throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'Too many DPoP proofs to remember; try again shortly')
      onError(error as Error)
      throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The DPoP replay store is not available')
    }
    return claims
  }

  const AUTHORIZATION = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*) *$/i
  function header (headers: RequestToVerify['headers'], name: string): string | string[] | undefined {
    if (typeof (headers as Headers).get === 'function') return (headers as Headers).get(name) ?? undefined
    return (headers as Record<string, string | string[] | undefined>)[name]
  }

  async function verifyRequest (request: RequestToVerify): Promise<AccessTokenClaims> {
    const authorization = header(request.headers, 'authorization')
    if (authorization === undefined) throw refusal('AUTH_TOKEN_MISSING', 'An access token is required', undefined)
    if (typeof authorization !== 'string') throw refusal('AUTH_TOKEN_INVALID', 'One Authorization header, please', undefined, 'invalid_token')
    const match = AUTHORIZATION.exec(authorization)
    if (match === null) {
      // Another scheme is no credential this service takes; a broken Bearer or DPoP header is an invalid one.
      if (/^DPoP\b/i.test(authorization) && dpop !== undefined) throw refusal('AUTH_TOKEN_INVALID', 'The access token is invalid', 'DPoP', 'invalid_token')
      if (/^Bearer\b/i.test(authorization)) throw refusal('AUTH_TOKEN_INVALID', 'The access token is invalid', 'Bearer', 'invalid_token')
      throw refusal('AUTH_TOKEN_MISSING', 'An access token is required', undefined)
    }
    const [, scheme, token] = match as unknown as [string, string, string]
    if (scheme.toLowerCase() === 'bearer') return verify(token)
    const proof = header(request.headers, 'dpop')
    // §4.3 step 1: exactly one DPoP header (Node joins repeated ones with a comma, which no JWS has).
    if (Array.isArray(proof) || (typeof proof === 'string' && proof.includes(','))) {
      throw refusal('AUTH_DPOP_INVALID', 'Exactly one DPoP header is allowed', 'DPoP', 'invalid_dpop_proof')
    }
    return verifyDpop(token, proof?.trim(), request)
  }

  return {
    verify,
    verifyDpop,
    verifyRequest,
    dpopEnabled: dpop !== undefined,
    dpopNonce: () => dpop?.nonce?.current(),
    ready,
    status: () => ({
      connected: follower?.connected ?? false,
      cursor: follower?.cursor,
      freshAt: follower?.freshAt ?? 0,
      revoked: state.size
    }),
    close: async () => {
      closed = true
      clearInterval(prune)
      await setup.catch(() => {})
      await follower?.close()
    }
  }
}
