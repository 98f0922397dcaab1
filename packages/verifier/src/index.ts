// @auth-server/verifier: verify the auth server's access tokens in another service, with the same
// guarantees as the server's own routes. Signatures are checked against the JWKS (cached, refetched
// on an unknown kid, at most once per cooldown); revocations come from the server's revocation feed
// (a snapshot, then the live stream, resumed from its cursor after any drop). While the feed has been
// silent longer than `maxStalenessMs`, verify() fails closed.
import { createRemoteJWKSet, customFetch, errors as joseErrors, jwtVerify } from 'jose'
import { RevocationFollower, RevocationState } from './revocations.js'

export type { RevocationEvent } from './revocations.js'

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
  [claim: string]: unknown
}

export type VerifierErrorCode = 'AUTH_TOKEN_MISSING' | 'AUTH_TOKEN_INVALID' | 'AUTH_TOKEN_EXPIRED' | 'AUTH_TOKEN_REVOKED' | 'AUTH_VERIFIER_UNAVAILABLE'

/** Why a token was refused, with the server's error code and the HTTP status to answer with. */
export class VerifierError extends Error {
  readonly statusCode: 401 | 503
  constructor (readonly code: VerifierErrorCode, message: string) {
    super(message)
    this.name = 'VerifierError'
    this.statusCode = code === 'AUTH_VERIFIER_UNAVAILABLE' ? 503 : 401
  }
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
  /** Resolves with the claims of a valid, unrevoked access token; rejects with a VerifierError. */
  verify: (token: string) => Promise<AccessTokenClaims>
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

  async function verify (token: string): Promise<AccessTokenClaims> {
    if (typeof token !== 'string' || token === '') throw new VerifierError('AUTH_TOKEN_MISSING', 'An access token is required')
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
      if (error instanceof joseErrors.JWTExpired) throw new VerifierError('AUTH_TOKEN_EXPIRED', 'The access token has expired')
      if (error instanceof joseErrors.JOSEError && !(error instanceof joseErrors.JWKSTimeout)) {
        throw new VerifierError('AUTH_TOKEN_INVALID', 'The access token is invalid')
      }
      // The JWKS could not be fetched: the token may be fine, the answer is not known.
      onError(error as Error)
      throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The auth server\'s keys are not available')
    }
    if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string' || !Number.isSafeInteger(payload.ver)) {
      throw new VerifierError('AUTH_TOKEN_INVALID', 'The access token is invalid')
    }
    if (follower !== undefined) {
      if (Date.now() - follower.freshAt > maxStalenessMs) {
        throw new VerifierError('AUTH_VERIFIER_UNAVAILABLE', 'The revocation feed is out of date; refusing tokens until it is back')
      }
      if (state.isRevoked(payload)) throw new VerifierError('AUTH_TOKEN_REVOKED', 'The access token has been revoked')
    }
    return payload
  }

  return {
    verify,
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
