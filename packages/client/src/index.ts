// @auth-server/client: the client half of auth-server. It holds the short-lived access token in
// memory, refreshes it before it expires, and on AUTH_TOKEN_EXPIRED refreshes once and retries once.
//
// Web mode: the refresh token lives in the server's httpOnly cookie, which every tab shares. The tabs
// of one browser refresh one at a time (Web Locks) and hand the new access token and a logout to each
// other (BroadcastChannel), so N tabs whose tokens expire together make one refresh request.
// Mobile mode: the refresh token is kept through a storage adapter (SecureStore/Keychain-shaped) and
// written by compare-and-swap, so an older answer never overwrites a newer token.
//
// DPoP (the `dpop` option): every login, refresh and API call carries a proof signed by a
// key the SDK never sees the private half of (the DPoP section at the end of this file), so a copied
// refresh token is useless elsewhere.
//
// No runtime dependencies, and no DOM assumptions outside web mode (React Native, Node). One file on
// purpose: the server serves this build as one ES module at /demo/auth-client.js.

export type Mode = 'web' | 'mobile'

export interface User { id: string, username: string }

export interface Session {
  id: string
  createdAt: string
  lastUsedAt: string
  userAgent: string | null
  ip: string | null
  current: boolean
  [extra: string]: unknown
}

/** Why a session ended, as onSessionEnded reports it. */
const SESSION_END_REASONS = ['logout', 'reused', 'revoked', 'expired', 'password-changed'] as const
export type SessionEndReason = typeof SESSION_END_REASONS[number]

/** Where mobile mode keeps the refresh token: expo-secure-store, react-native-keychain, a file… */
export interface StorageAdapter {
  get: (key: string) => Promise<string | null | undefined> | string | null | undefined
  set: (key: string, value: string) => Promise<void> | void
  delete: (key: string) => Promise<void> | void
}

export interface AuthClientOptions {
  /** The server's URL, e.g. https://auth.example.com (an optional path prefix is kept). */
  baseUrl: string
  mode: Mode
  /** Mobile mode: required. Web mode: unused (the refresh token is an httpOnly cookie). */
  storage?: StorageAdapter
  /** A fetch implementation; defaults to globalThis.fetch. */
  fetch?: typeof globalThis.fetch
  /** The storage key of the refresh token (mobile). */
  storageKey?: string
  /** Refresh this many seconds before the access token expires (at most a quarter of its lifetime). Default 60. */
  refreshLeewaySeconds?: number
  /** Refresh on a timer before expiry. Default true; the check before each fetch happens regardless. */
  autoRefresh?: boolean
  /** Milliseconds since the epoch; only for tests and clocks that cannot be trusted. */
  clock?: () => number
  /** Web mode: coordinate with the other tabs of this browser. Default true where the browser allows. */
  crossTab?: boolean
  /**
   * Bind the session to a key (DPoP, RFC 9449). `true` uses a non-extractable WebCrypto ES256 key
   * (kept in IndexedDB in browsers, shared by the tabs; in memory in Node); or pass your own key provider.
   */
  dpop?: boolean | { keyProvider: DpopKeyProvider }
}

export interface AuthClient {
  register: (username: string, password: string) => Promise<User>
  login: (username: string, password: string) => Promise<User>
  logout: () => Promise<void>
  logoutAll: () => Promise<void>
  changePassword: (currentPassword: string, newPassword: string) => Promise<void>
  sessions: () => Promise<Session[]>
  revokeSession: (id: string) => Promise<void>
  /** Gets a new access token now (single-flight). True when the client holds a session afterwards. */
  refresh: () => Promise<boolean>
  /** fetch with the access token added, refreshed before expiry and once on AUTH_TOKEN_EXPIRED. */
  fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>
  /** For apps coming back to the foreground (and at start): refreshes if the access token is stale. */
  resume: () => Promise<User | null>
  user: () => User | null
  /** Called with the user on every login, refresh to another user, and with null when signed out. */
  onChange: (listener: (user: User | null) => void) => () => void
  onSessionEnded: (listener: (reason: SessionEndReason) => void) => () => void
  /** Stops timers and cross-tab listeners. */
  close: () => void
}

/** Every failure the SDK reports: `code` is the contract's code (or NETWORK_ERROR / BAD_RESPONSE). */
export class AuthError extends Error {
  readonly status: number
  readonly code: string
  readonly body: unknown
  constructor (status: number, code: string, message: string, body?: unknown, options?: { cause?: unknown }) {
    super(message)
    this.name = 'AuthError'
    this.status = status
    this.code = code
    this.body = body
    if (options?.cause !== undefined) (this as { cause?: unknown }).cause = options.cause
  }
}

interface TokenResponse {
  accessToken: string
  tokenType: string
  expiresIn: number
  refreshToken?: string
  refreshExpiresIn: number
  user: User
}

interface HeldToken {
  accessToken: string
  /** 'DPoP' for a token bound to the client's key (sent with a proof), else 'Bearer'. */
  tokenType?: string
  /** Local clock, ms: when the answer that carried it was received, and when it stops working. */
  receivedAt: number
  expiresAt: number
  user: User
}

type TabMessage =
  | { type: 'token', token: HeldToken }
  | { type: 'token-request' }
  | { type: 'logout', reason: SessionEndReason }

const DEFAULT_STORAGE_KEY = 'auth-server.refresh-token'
const REFRESH_MARKER_PREFIX = 'auth-client:refreshed:'
/** How long a tab that learned of another tab's refresh waits for its token before refreshing itself. */
const TOKEN_HANDOFF_WAIT_MS = 2000

export function createAuthClient (options: AuthClientOptions): AuthClient {
  return new Client(options).api()
}

function trimSlash (url: string): string {
  return url.replace(/\/+$/, '')
}

/** The contract's code of an error answer, if it has one. */
async function errorCode (response: Response): Promise<{ code: string, message: string, body: unknown }> {
  let body: unknown
  try {
    body = await response.clone().json()
  } catch {
    body = undefined
  }
  const shaped = body as { code?: unknown, message?: unknown } | undefined
  return {
    code: typeof shaped?.code === 'string' ? shaped.code : `HTTP_${response.status}`,
    message: typeof shaped?.message === 'string' ? shaped.message : `HTTP ${response.status}`,
    body
  }
}

/** The payload of a JWT, read without verifying it (only the session id is ever used). */
function jwtClaims (token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? ''
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/')
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  let bits = 0
  let value = 0
  const bytes: number[] = []
  for (const char of base64) {
    const index = alphabet.indexOf(char)
    if (index < 0) continue
    value = (value << 6) | index
    bits += 6
    if (bits >= 8) {
      bits -= 8
      bytes.push((value >> bits) & 0xff)
    }
  }
  try {
    // UTF-8 without TextDecoder, which not every React Native engine has.
    return JSON.parse(decodeURIComponent(bytes.map((byte) => '%' + byte.toString(16).padStart(2, '0')).join(''))) as Record<string, unknown>
  } catch {
    return {}
  }
}

/** A one-slot mutex for one JavaScript context. */
function serialized () {
  let tail: Promise<unknown> = Promise.resolve()
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task, task)
    tail = run.catch(() => {})
    return run
  }
}

class Client {
  private readonly baseUrl: string
  private readonly mode: Mode
  private readonly storage: StorageAdapter | undefined
  private readonly doFetch: typeof globalThis.fetch
  private readonly storageKey: string
  private readonly leewayMs: number
  private readonly autoRefresh: boolean
  private readonly now: () => number
  private token: HeldToken | null = null
  /** Raised on every token adopted or dropped, so a waiter can tell that something newer came. */
  private generation = 0
  private refreshing: Promise<boolean> | null = null
  private timer: ReturnType<typeof setTimeout> | undefined
  private readonly changeListeners = new Set<(user: User | null) => void>()
  private readonly endListeners = new Set<(reason: SessionEndReason) => void>()
  private readonly storageLock = serialized()
  private channel: BroadcastChannel | null = null
  private readonly locks: LockManager | null = null
  private releaseMarker: (() => void) | null = null
  private readonly generationWaiters = new Set<() => void>()
  private readonly onVisible = (): void => {
    if (globalThis.document?.visibilityState === 'visible') void this.resume().catch(() => {})
  }

  private closed = false
  private readonly dpop: DpopKeyProvider | null = null
  /** The latest DPoP-Nonce each origin sent (RFC 9449 §8): the next proof to it carries it. */
  private readonly dpopNonces = new Map<string, string>()

  constructor (options: AuthClientOptions) {
    if (typeof options.baseUrl !== 'string' || options.baseUrl === '') throw new TypeError('createAuthClient: baseUrl is required')
    if (options.mode !== 'web' && options.mode !== 'mobile') throw new TypeError('createAuthClient: mode must be "web" or "mobile"')
    if (options.mode === 'mobile' && options.storage === undefined) throw new TypeError('createAuthClient: mobile mode needs a storage adapter (get, set, delete)')
    const fetchImpl = options.fetch ?? globalThis.fetch
    if (typeof fetchImpl !== 'function') throw new TypeError('createAuthClient: no fetch implementation; pass options.fetch')
    this.baseUrl = trimSlash(options.baseUrl)
    this.mode = options.mode
    this.storage = options.storage
    this.doFetch = (input, init) => fetchImpl(input, init)
    this.storageKey = options.storageKey ?? DEFAULT_STORAGE_KEY
    this.leewayMs = Math.max(0, options.refreshLeewaySeconds ?? 60) * 1000
    this.autoRefresh = options.autoRefresh ?? true
    this.now = options.clock ?? (() => Date.now())
    if (options.dpop !== undefined && options.dpop !== false) {
      this.dpop = options.dpop === true
        ? webCryptoKeyProvider({ name: `auth-client:dpop:${this.baseUrl}` })
        : options.dpop.keyProvider
      if (this.dpop === undefined || typeof this.dpop.sign !== 'function' || typeof this.dpop.publicJwk !== 'function') {
        throw new TypeError('createAuthClient: dpop.keyProvider needs alg, publicJwk() and sign(data)')
      }
    }

    if (this.mode === 'web' && options.crossTab !== false) {
      if (typeof BroadcastChannel === 'function') {
        this.channel = new BroadcastChannel(`auth-client:${this.baseUrl}`)
        this.channel.onmessage = (event: MessageEvent<TabMessage>) => this.onTabMessage(event.data)
        // Node has BroadcastChannel too; there it must not keep the process alive.
        ;(this.channel as { unref?: () => void }).unref?.()
      }
      const locks = (globalThis.navigator as Navigator | undefined)?.locks
      if (locks !== undefined && typeof locks.request === 'function') this.locks = locks
      globalThis.document?.addEventListener?.('visibilitychange', this.onVisible)
    }
  }

  api (): AuthClient {
    return {
      register: (username, password) => this.register(username, password),
      login: (username, password) => this.login(username, password),
      logout: () => this.logout(),
      logoutAll: () => this.logoutAll(),
      changePassword: (currentPassword, newPassword) => this.changePassword(currentPassword, newPassword),
      sessions: () => this.sessions(),
      revokeSession: (id) => this.revokeSession(id),
      refresh: () => this.refresh(),
      fetch: (input, init) => this.authorizedFetch(input, init),
      resume: () => this.resume(),
      user: () => this.token?.user ?? null,
      onChange: (listener) => { this.changeListeners.add(listener); return () => this.changeListeners.delete(listener) },
      onSessionEnded: (listener) => { this.endListeners.add(listener); return () => this.endListeners.delete(listener) },
      close: () => this.close()
    }
  }

  // ---- requests to the server ----

  private url (path: string): string {
    return this.baseUrl + path
  }

  /**
   * A request to an /auth endpoint: the cookie and the CSRF header travel in web mode; `proof` adds a
   * DPoP proof (login, refresh), made anew for the one retry a nonce challenge earns.
   */
  private async authRequest (path: string, init: RequestInit = {}, proof = false): Promise<Response> {
    const headers = new Headers(init.headers)
    if (init.body !== undefined && !headers.has('content-type')) headers.set('content-type', 'application/json')
    if (this.mode === 'web') headers.set('x-requested-with', 'fetch')
    const url = this.url(path)
    const attempt = async (): Promise<Response> => {
      if (proof && this.dpop !== null) headers.set('dpop', await this.proof(init.method ?? 'GET', url))
      try {
        return await this.doFetch(url, {
          ...init,
          headers,
          credentials: this.mode === 'web' ? 'include' : 'omit',
          cache: 'no-store'
        })
      } catch (error) {
        throw new AuthError(0, 'NETWORK_ERROR', `Could not reach the auth server: ${String((error as Error)?.message ?? error)}`, undefined, { cause: error })
      }
    }
    const response = await attempt()
    if (!proof || this.dpop === null) return response
    if (await this.nonceChallenged(url, response)) return attempt()
    // A proof refused while this device's clock is far off the server's: once more, on the server's time.
    if (this.learnClockOffset(response) && response.status >= 400 && response.status < 500) return attempt()
    return response
  }

  /** Server time − this device's time (ms), learned from the auth server's Date header when far off. */
  private clockOffsetMs = 0

  /** True when the answer's Date moved the proofs' clock by more than 30 s (the iat of the last proof was off). */
  private learnClockOffset (response: Response): boolean {
    const date = Date.parse(response.headers.get('date') ?? '')
    if (Number.isNaN(date)) return false
    const offset = date - this.now()
    // Date has whole seconds and the answer took a while: small differences are noise.
    const next = Math.abs(offset) > 10_000 ? offset : 0
    const moved = Math.abs(next - this.clockOffsetMs) > 30_000
    this.clockOffsetMs = next
    return moved
  }

  // ---- DPoP ----

  private async proof (method: string, url: string, accessToken?: string): Promise<string> {
    let nonce: string | undefined
    try { nonce = this.dpopNonces.get(new URL(url).origin) } catch { /* not an absolute URL: no nonce */ }
    try {
      return await createProof(this.dpop!, { method, url, accessToken, nonce, iat: Math.floor((this.now() + this.clockOffsetMs) / 1000) })
    } catch (error) {
      throw new AuthError(0, 'DPOP_KEY_ERROR', `Could not sign a DPoP proof: ${String((error as Error)?.message ?? error)}`, undefined, { cause: error })
    }
  }

  /** Keeps the answer's DPoP-Nonce; true when the answer asks for a proof with it (use_dpop_nonce). */
  private async nonceChallenged (url: string, response: Response): Promise<boolean> {
    const nonce = response.headers.get('dpop-nonce')
    if (nonce === null || this.dpop === null) return false
    try { this.dpopNonces.set(new URL(url).origin, nonce) } catch { return false }
    if (response.status !== 400 && response.status !== 401) return false
    if (/use_dpop_nonce/.test(response.headers.get('www-authenticate') ?? '')) return true
    const { code, body } = await errorCode(response)
    return code === 'AUTH_DPOP_NONCE' || (body as { error?: unknown } | undefined)?.error === 'use_dpop_nonce'
  }

  /** Authorization (and DPoP proof) headers for a request carrying `token`. */
  private async authorize (headers: Headers, token: HeldToken, method: string, url: string): Promise<void> {
    if (token.tokenType?.toLowerCase() === 'dpop' && this.dpop !== null) {
      headers.set('authorization', `DPoP ${token.accessToken}`)
      headers.set('dpop', await this.proof(method, url, token.accessToken))
    } else {
      headers.set('authorization', `Bearer ${token.accessToken}`)
      headers.delete('dpop')
    }
  }

  private async json<T> (response: Response): Promise<T> {
    if (!response.ok) {
      const { code, message, body } = await errorCode(response)
      throw new AuthError(response.status, code, message, body)
    }
    try {
      return await response.json() as T
    } catch (error) {
      throw new AuthError(response.status, 'BAD_RESPONSE', 'The auth server answered with something other than JSON', undefined, { cause: error })
    }
  }

  private async expectNoContent (response: Response): Promise<void> {
    if (!response.ok) {
      const { code, message, body } = await errorCode(response)
      throw new AuthError(response.status, code, message, body)
    }
  }

  // ---- holding tokens ----

  private leeway (token: HeldToken): number {
    return Math.min(this.leewayMs, (token.expiresAt - token.receivedAt) / 4)
  }

  private isFresh (token: HeldToken | null): boolean {
    return token !== null && this.now() < token.expiresAt - this.leeway(token)
  }

  private fromResponse (body: TokenResponse): HeldToken {
    const receivedAt = this.now()
    // The token's exp counts from the server's whole second of issue, so it may end up to a second
    // before `expiresIn` says; counting from this client's receipt avoids trusting its wall clock.
    const lifetime = Math.max(body.expiresIn * 1000 - 1000, body.expiresIn * 500)
    return { accessToken: body.accessToken, tokenType: body.tokenType, receivedAt, expiresAt: receivedAt + lifetime, user: body.user }
  }

  private adopt (token: HeldToken): void {
    // An older token (a late answer, a late message) never replaces a newer one.
    if (this.token !== null && token.receivedAt < this.token.receivedAt) return
    const before = this.token?.user
    this.token = token
    this.bumpGeneration()
    this.schedule()
    if (before?.id !== token.user.id || before?.username !== token.user.username) this.emitChange(token.user)
  }

  private bumpGeneration (): void {
    this.generation++
    for (const wake of this.generationWaiters) wake()
    this.generationWaiters.clear()
  }

  private waitForGeneration (after: number, ms: number): Promise<boolean> {
    if (this.generation !== after) return Promise.resolve(true)
    return new Promise((resolve) => {
      const wake = (): void => { clearTimeout(timeout); resolve(true) }
      const timeout = setTimeout(() => { this.generationWaiters.delete(wake); resolve(this.generation !== after) }, ms)
      this.generationWaiters.add(wake)
    })
  }

  private schedule (): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    if (!this.autoRefresh || this.closed || this.token === null) return
    const token = this.token
    const delay = Math.max(0, token.expiresAt - this.leeway(token) - this.now())
    this.timer = setTimeout(() => {
      this.timer = undefined
      if (this.token === token) void this.refresh().catch(() => {})
    }, delay)
    // In Node the timer must not keep the process alive.
    const unref = (this.timer as { unref?: () => void }).unref
    if (typeof unref === 'function') unref.call(this.timer)
  }

  private emitChange (user: User | null): void {
    for (const listener of [...this.changeListeners]) {
      try { listener(user) } catch { /* a listener's error is its own */ }
    }
  }

  /** Forgets the session here (and, unless told by another tab, in the other tabs) and says why. */
  private async endSession (reason: SessionEndReason, fromOtherTab = false): Promise<void> {
    const hadSession = this.token !== null
    this.token = null
    this.bumpGeneration()
    this.schedule()
    if (this.mode === 'mobile') await this.storageLock(async () => { await this.storage!.delete(this.storageKey) })
    if (!fromOtherTab) this.post({ type: 'logout', reason })
    if (hadSession || reason === 'reused' || !fromOtherTab) {
      this.emitChange(null)
      for (const listener of [...this.endListeners]) {
        try { listener(reason) } catch { /* a listener's error is its own */ }
      }
    }
  }

  // ---- mobile storage ----

  private async storedRefreshToken (): Promise<string | null> {
    const value = await this.storage!.get(this.storageKey)
    return typeof value === 'string' && value !== '' ? value : null
  }

  /**
   * Writes `next` only if the stored token is still the one this answer was for. Another context
   * (or an earlier request of this one) may have stored a newer token meanwhile: it stays.
   */
  private async compareAndSwap (expected: string | null, next: string): Promise<boolean> {
    return this.storageLock(async () => {
      const current = await this.storedRefreshToken()
      if (current !== expected) return false
      await this.storage!.set(this.storageKey, next)
      return true
    })
  }

  private async storeSessionStart (refreshToken: string | undefined): Promise<void> {
    if (this.mode !== 'mobile') return
    if (refreshToken === undefined) throw new AuthError(200, 'BAD_RESPONSE', 'The token response carries no refresh token')
    await this.storageLock(async () => { await this.storage!.set(this.storageKey, refreshToken) })
  }

  // ---- cross-tab coordination (web mode) ----

  private post (message: TabMessage): void {
    try { this.channel?.postMessage(message) } catch { /* the channel is closed */ }
  }

  private onTabMessage (message: TabMessage): void {
    if (this.closed || message === null || typeof message !== 'object') return
    if (message.type === 'token') this.adopt(message.token)
    else if (message.type === 'token-request') {
      if (this.token !== null && this.isFresh(this.token)) this.post({ type: 'token', token: this.token })
    } else if (message.type === 'logout') void this.endSession(message.reason, true)
  }

  /** Runs `task` while holding the browser-wide refresh lock (or directly where there is none). */
  private withRefreshLock<T> (task: () => Promise<T>): Promise<T> {
    if (this.locks === null) return task()
    return this.locks.request(`auth-client:refresh:${this.baseUrl}`, { mode: 'exclusive' }, task) as Promise<T>
  }

  /**
   * Leaves a mark, readable by every tab through navigator.locks.query (the browser's lock manager
   * is one authority for all tabs), that this tab got a new token at `at`. A tab that acquires the
   * refresh lock after us sees it even if our BroadcastChannel message has not reached it yet.
   */
  private async markRefreshed (at: number): Promise<void> {
    if (this.locks === null) return
    const previous = this.releaseMarker
    await new Promise<void>((granted) => {
      void this.locks!.request(`${REFRESH_MARKER_PREFIX}${this.baseUrl}:${at}`, { mode: 'shared' }, () => {
        granted()
        return new Promise<void>((release) => { this.releaseMarker = release })
      })
    })
    previous?.()
  }

  /** The latest time any tab marked a refresh. */
  private async lastMarkedRefresh (): Promise<number> {
    if (this.locks === null) return 0
    const prefix = `${REFRESH_MARKER_PREFIX}${this.baseUrl}:`
    const state = await this.locks.query()
    let latest = 0
    for (const lock of state.held ?? []) {
      if (lock.name?.startsWith(prefix) === true) latest = Math.max(latest, Number(lock.name.slice(prefix.length)) || 0)
    }
    return latest
  }

  // ---- refresh ----

  refresh (): Promise<boolean> {
    // Single-flight: every caller in this context shares one refresh.
    this.refreshing ??= this.refreshOnce().finally(() => { this.refreshing = null })
    return this.refreshing
  }

  private async refreshOnce (): Promise<boolean> {
    const stale = this.token
    const generation = this.generation
    if (this.mode === 'mobile') return this.refreshMobile()
    return this.withRefreshLock(async () => {
      // Another tab may have refreshed while this one waited for the lock.
      if (this.generation !== generation && this.isFresh(this.token)) return true
      if (await this.lastMarkedRefresh() > (stale?.receivedAt ?? 0)) {
        this.post({ type: 'token-request' })
        if (await this.waitForGeneration(generation, TOKEN_HANDOFF_WAIT_MS) && this.isFresh(this.token)) return true
      }
      const response = await this.authRequest('/auth/refresh', { method: 'POST' }, true)
      if (response.ok) {
        const token = this.fromResponse(await this.json<TokenResponse>(response))
        this.adopt(token)
        await this.markRefreshed(token.receivedAt)
        this.post({ type: 'token', token })
        return true
      }
      return this.refusedRefresh(response, stale, generation)
    })
  }

  private async refreshMobile (): Promise<boolean> {
    const stale = this.token
    const generation = this.generation
    const presented = await this.storageLock(() => this.storedRefreshToken())
    if (presented === null) {
      if (stale !== null) await this.endSession('expired')
      return false
    }
    const response = await this.authRequest('/auth/refresh', { method: 'POST', body: JSON.stringify({ refreshToken: presented }) }, true)
    if (response.ok) {
      const body = await this.json<TokenResponse>(response)
      if (body.refreshToken === undefined) throw new AuthError(200, 'BAD_RESPONSE', 'The token response carries no refresh token')
      if (await this.compareAndSwap(presented, body.refreshToken)) {
        this.adopt(this.fromResponse(body))
        return true
      }
      // Someone stored a newer token meanwhile (or logged out): this answer is the older one.
      if (await this.storageLock(() => this.storedRefreshToken()) === null) return false
      if (this.token === null || !this.isFresh(this.token)) this.adopt(this.fromResponse(body))
      return true
    }
    return this.refusedRefresh(response, stale, generation)
  }

  /** A refresh the server answered with an error: end the session only when the server says it is over. */
  private async refusedRefresh (response: Response, stale: HeldToken | null, generation: number): Promise<boolean> {
    const { code, message, body } = await errorCode(response)
    // A refused proof (a key other than the session's, a clock far off) ends nothing: nothing rotated,
    // and the session goes on with a good proof.
    if (response.status !== 401 || code.startsWith('AUTH_DPOP')) throw new AuthError(response.status, code, message, body)
    // A newer token came while the request was out (another tab's refresh or password change, whose
    // cookie replaced the one this request carried): the session goes on.
    if (this.generation !== generation && this.token !== null && this.isFresh(this.token)) return true
    // The session ended here while the request was out (a logout): it is not ended twice.
    if (this.generation !== generation && this.token === null && stale !== null) return false
    // The server says why a session it knows of ended (`reason`); an unknown token has none.
    const reason = (body as { reason?: unknown } | undefined)?.reason
    const told = typeof reason === 'string' && (SESSION_END_REASONS as readonly string[]).includes(reason) ? reason as SessionEndReason : undefined
    if (code === 'AUTH_REFRESH_REUSED') {
      await this.endSession('reused')
    } else if (stale !== null || this.token !== null || this.mode === 'mobile') {
      // Mobile: a stored token is a session the app knew of, even before this start's first refresh.
      // Web: a tab without a token that finds no live cookie simply has no session.
      await this.endSession(told ?? (this.revokedSeen ? 'revoked' : 'expired'))
    }
    this.revokedSeen = false
    return false
  }

  /** Set when the server refused an access token as revoked: a failed refresh then means "revoked". */
  private revokedSeen = false

  /** A fresh access token, refreshing first when it is about to expire; null without a session. */
  private async freshToken (): Promise<HeldToken | null> {
    if (this.token !== null && this.isFresh(this.token)) return this.token
    try {
      await this.refresh()
    } catch (error) {
      // Offline or the server busy: a token that has not expired yet still works.
      if (this.token !== null && this.now() < this.token.expiresAt) return this.token
      throw error
    }
    return this.token
  }

  // ---- fetch ----

  private resolve (input: string | URL | Request): string | URL | Request {
    if (typeof input === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(input)) return this.url(input.startsWith('/') ? input : `/${input}`)
    return input
  }

  private async send (input: string | URL | Request, init: RequestInit | undefined, token: HeldToken | null): Promise<Response> {
    const isRequest = typeof Request === 'function' && input instanceof Request
    const headers = new Headers(init?.headers ?? (isRequest ? (input as Request).headers : undefined))
    if (typeof init?.body === 'string' && !headers.has('content-type')) headers.set('content-type', 'application/json')
    const method = init?.method ?? (isRequest ? (input as Request).method : 'GET')
    const url = isRequest ? (input as Request).url : String(input)
    const attempt = async (): Promise<Response> => {
      const request = isRequest ? (input as Request).clone() : input
      if (token !== null) await this.authorize(headers, token, method, url)
      else headers.delete('authorization')
      return this.doFetch(request, { ...init, headers })
    }
    const response = await attempt()
    // A resource server that wants a nonce in the proof: one retry with it, a new proof.
    if (token?.tokenType?.toLowerCase() === 'dpop' && await this.nonceChallenged(url, response)) return attempt()
    return response
  }

  async authorizedFetch (input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const target = this.resolve(input)
    const used = await this.freshToken()
    const first = await this.send(target, init, used)
    if (first.status !== 401 || used === null) return first
    const { code } = await errorCode(first)
    if (code !== 'AUTH_TOKEN_EXPIRED' && code !== 'AUTH_TOKEN_REVOKED') return first
    // One refresh and one retry, never a loop: the second answer is returned as it is.
    if (this.token === null || this.token.accessToken === used.accessToken) {
      if (code === 'AUTH_TOKEN_REVOKED') this.revokedSeen = true
      const refreshed = await this.refresh()
      if (!refreshed || this.token === null) return first
    }
    const retryWith = this.token
    if (retryWith === null || retryWith.accessToken === used.accessToken) return first
    return this.send(target, init, retryWith)
  }

  /** An /auth call that needs the access token (and, in web mode, may set the cookie). */
  private async authorizedAuthCall (path: string, init: RequestInit): Promise<Response> {
    return this.authorizedFetch(path, { ...init, credentials: this.mode === 'web' ? 'include' : 'omit', headers: { ...(this.mode === 'web' ? { 'x-requested-with': 'fetch' } : {}), ...(init.headers as Record<string, string> | undefined) } })
  }

  // ---- the API ----

  async register (username: string, password: string): Promise<User> {
    const response = await this.authRequest('/auth/register', { method: 'POST', body: JSON.stringify({ username, password }) })
    return (await this.json<{ user: User }>(response)).user
  }

  async login (username: string, password: string): Promise<User> {
    const response = await this.authRequest('/auth/login', {
      method: 'POST',
      body: JSON.stringify({ username, password, client: this.mode })
    }, true)
    const body = await this.json<TokenResponse>(response)
    await this.storeSessionStart(body.refreshToken)
    const token = this.fromResponse(body)
    this.revokedSeen = false
    this.adopt(token)
    if (this.mode === 'web') {
      await this.markRefreshed(token.receivedAt)
      this.post({ type: 'token', token })
    }
    return body.user
  }

  async logout (): Promise<void> {
    let failure: unknown
    try {
      let response: Response
      if (this.mode === 'web') {
        response = await this.authRequest('/auth/logout', { method: 'POST' })
      } else {
        const refreshToken = await this.storageLock(() => this.storedRefreshToken())
        const headers = new Headers()
        if (refreshToken === null && this.token !== null) await this.authorize(headers, this.token, 'POST', this.url('/auth/logout'))
        response = refreshToken !== null
          ? await this.authRequest('/auth/logout', { method: 'POST', body: JSON.stringify({ refreshToken }) })
          : await this.authRequest('/auth/logout', { method: 'POST', headers })
      }
      // 401: the session had already ended; the outcome is the same.
      if (!response.ok && response.status !== 401) {
        const { code, message, body } = await errorCode(response)
        failure = new AuthError(response.status, code, message, body)
      }
    } catch (error) {
      failure = error
    }
    // The local session ends whatever the server said: a user who logs out is logged out here.
    await this.endSession('logout')
    if (failure !== undefined) throw failure
  }

  async logoutAll (): Promise<void> {
    const response = await this.authorizedAuthCall('/auth/logout-all', { method: 'POST' })
    await this.expectNoContent(response)
    await this.endSession('logout')
  }

  async changePassword (currentPassword: string, newPassword: string): Promise<void> {
    const presented = this.mode === 'mobile' ? await this.storageLock(() => this.storedRefreshToken()) : null
    const response = await this.authorizedAuthCall('/auth/password', { method: 'POST', body: JSON.stringify({ currentPassword, newPassword }) })
    const body = await this.json<TokenResponse>(response)
    if (this.mode === 'mobile') {
      if (body.refreshToken === undefined) throw new AuthError(200, 'BAD_RESPONSE', 'The token response carries no refresh token')
      // Every older refresh token is dead now; only a logout meanwhile keeps this one from being stored.
      const stored = await this.compareAndSwap(presented, body.refreshToken)
      if (!stored && await this.storageLock(() => this.storedRefreshToken()) !== null) await this.storeSessionStart(body.refreshToken)
    }
    const token = this.fromResponse(body)
    this.adopt(token)
    if (this.mode === 'web') {
      await this.markRefreshed(token.receivedAt)
      this.post({ type: 'token', token })
    }
  }

  async sessions (): Promise<Session[]> {
    const response = await this.authorizedFetch('/auth/sessions')
    return (await this.json<{ sessions: Session[] }>(response)).sessions
  }

  async revokeSession (id: string): Promise<void> {
    const current = this.token === null ? undefined : jwtClaims(this.token.accessToken).sid
    const response = await this.authorizedFetch(`/auth/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' })
    await this.expectNoContent(response)
    if (id === current) await this.endSession('logout')
  }

  async resume (): Promise<User | null> {
    if (this.token !== null && this.isFresh(this.token)) return this.token.user
    if (this.mode === 'mobile' && this.token === null && await this.storageLock(() => this.storedRefreshToken()) === null) return null
    try {
      await this.refresh()
    } catch (error) {
      if (this.token !== null && this.now() < this.token.expiresAt) return this.token.user
      throw error
    }
    return this.token?.user ?? null
  }

  close (): void {
    this.closed = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.releaseMarker?.()
    this.releaseMarker = null
    try { this.channel?.close() } catch { /* already closed */ }
    this.channel = null
    globalThis.document?.removeEventListener?.('visibilitychange', this.onVisible)
  }
}

// ---- DPoP (RFC 9449) ----
//
// DPoP for the client: a key pair whose private half never leaves its keeper proves, with
// every token request and API call, that the sender holds it. A refresh token or access token that is
// copied elsewhere is then useless without the key. No runtime dependencies: WebCrypto where there is
// one (browsers, Node), or any key provider (a phone's secure enclave through a native module).

/**
 * Signs DPoP proofs. The private key stays inside: the SDK only ever asks for the public JWK and for
 * signatures. `sign` gets the JWS signing input and returns the JWS signature (for ES256/ES384 the
 * raw r‖s form, 64/96 bytes, not DER — what WebCrypto's ECDSA gives).
 */
export interface DpopKeyProvider {
  /** The JWS algorithm: 'ES256' (P-256), 'ES384' or 'EdDSA' (Ed25519), as the server accepts. */
  readonly alg: string
  /** The public key as a JWK (public members only). */
  publicJwk: () => Promise<JsonWebKey>
  sign: (data: Uint8Array) => Promise<Uint8Array>
}

/** Where webCryptoKeyProvider keeps its key pair between runs (browsers: IndexedDB, which stores CryptoKeys as they are). */
export interface CryptoKeyStore {
  get: (name: string) => Promise<CryptoKeyPair | undefined>
  set: (name: string, keys: CryptoKeyPair) => Promise<void>
}

export interface WebCryptoKeyProviderOptions {
  /** 'ES256' (default) or 'EdDSA'. */
  alg?: 'ES256' | 'EdDSA'
  /** A key pair to use as it is (e.g. one made elsewhere). */
  keyPair?: CryptoKeyPair
  /**
   * Where the key pair is kept so it outlives the page or process. Default in browsers: IndexedDB
   * (database `auth-server-client`); elsewhere (Node): this process's memory only. `null`: memory only.
   */
  store?: CryptoKeyStore | null
  /** The key pair's name in the store. */
  name?: string
}

type Subtle = SubtleCrypto

function subtle (): Subtle {
  const found = (globalThis.crypto as Crypto | undefined)?.subtle
  if (found === undefined) throw new TypeError('DPoP: this platform has no WebCrypto (crypto.subtle); pass dpop.keyProvider')
  return found
}

/** IndexedDB as a CryptoKeyStore: a non-extractable key is stored as a CryptoKey, never as bytes. */
export function indexedDbKeyStore (database = 'auth-server-client'): CryptoKeyStore {
  const open = (): Promise<IDBDatabase> => new Promise((resolve, reject) => {
    const request = indexedDB.open(database, 1)
    request.onupgradeneeded = () => { request.result.createObjectStore('dpop-keys') }
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  const run = async <T>(mode: IDBTransactionMode, action: (store: IDBObjectStore) => IDBRequest): Promise<T> => {
    const db = await open()
    try {
      return await new Promise<T>((resolve, reject) => {
        const request = action(db.transaction('dpop-keys', mode).objectStore('dpop-keys'))
        request.onsuccess = () => resolve(request.result as T)
        request.onerror = () => reject(request.error)
      })
    } finally {
      db.close()
    }
  }
  return {
    get: (name) => run<CryptoKeyPair | undefined>('readonly', (store) => store.get(name)),
    set: async (name, keys) => { await run('readwrite', (store) => store.put(keys, name)) }
  }
}

const ALGORITHMS = {
  ES256: { generate: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  EdDSA: { generate: { name: 'Ed25519' }, sign: { name: 'Ed25519' } }
} as const

/**
 * The default key provider: a WebCrypto key pair made non-extractable (the page's own scripts cannot
 * read the private key, only use it), kept in IndexedDB in browsers so it outlives a reload.
 */
export function webCryptoKeyProvider (options: WebCryptoKeyProviderOptions = {}): DpopKeyProvider & { keyPair: () => Promise<CryptoKeyPair> } {
  const alg = options.alg ?? 'ES256'
  const algorithm = ALGORITHMS[alg]
  if (algorithm === undefined) throw new TypeError(`DPoP: webCryptoKeyProvider supports ES256 and EdDSA, not ${String(alg)}`)
  const store = options.store === undefined ? (typeof indexedDB === 'object' && indexedDB !== null ? indexedDbKeyStore() : null) : options.store
  const name = `${options.name ?? 'dpop'}:${alg}`
  let pair: Promise<CryptoKeyPair> | undefined = options.keyPair === undefined ? undefined : Promise.resolve(options.keyPair)
  let jwk: Promise<JsonWebKey> | undefined
  const keyPair = (): Promise<CryptoKeyPair> => {
    const getOrMake = async (): Promise<CryptoKeyPair> => {
      const kept = await store?.get(name).catch(() => undefined)
      if (kept?.privateKey !== undefined && kept.publicKey !== undefined) return kept
      const made = await subtle().generateKey(algorithm.generate as EcKeyGenParams, false, ['sign', 'verify']) as CryptoKeyPair
      await store?.set(name, made).catch(() => {})
      return made
    }
    // The tabs of a browser share the stored key: one at a time looks for it or makes it, so two
    // tabs starting together never end up with two keys.
    const locks = store === null ? undefined : (globalThis.navigator as Navigator | undefined)?.locks
    pair ??= locks !== undefined && typeof locks.request === 'function'
      ? locks.request(`auth-client:dpop-key:${name}`, { mode: 'exclusive' }, getOrMake) as unknown as Promise<CryptoKeyPair>
      : getOrMake()
    pair.catch(() => { pair = undefined })
    return pair
  }
  return {
    alg,
    keyPair,
    publicJwk: () => {
      jwk ??= keyPair().then(async (keys) => {
        const { kty, crv, x, y } = await subtle().exportKey('jwk', keys.publicKey)
        return JSON.parse(JSON.stringify({ kty, crv, x, y })) as JsonWebKey
      })
      jwk.catch(() => { jwk = undefined })
      return jwk
    },
    sign: async (data) => new Uint8Array(await subtle().sign(algorithm.sign as EcdsaParams, (await keyPair()).privateKey, data as BufferSource))
  }
}

// ---- encoding (no TextEncoder or btoa assumed: not every React Native engine has them) ----

function utf8 (text: string): Uint8Array {
  const bytes: number[] = []
  for (const char of text) {
    const code = char.codePointAt(0)!
    if (code < 0x80) bytes.push(code)
    else if (code < 0x800) bytes.push(0xc0 | (code >> 6), 0x80 | (code & 63))
    else if (code < 0x10000) bytes.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63))
    else bytes.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63))
  }
  return new Uint8Array(bytes)
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
export function base64url (bytes: Uint8Array): string {
  let out = ''
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i]! << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0)
    out += BASE64URL[(n >> 18) & 63]! + BASE64URL[(n >> 12) & 63]!
    if (i + 1 < bytes.length) out += BASE64URL[(n >> 6) & 63]!
    if (i + 2 < bytes.length) out += BASE64URL[n & 63]!
  }
  return out
}

// SHA-256 for ath where WebCrypto is missing (React Native with a native key provider).
const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])
export function sha256 (message: Uint8Array): Uint8Array {
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19])
  const length = Math.ceil((message.length + 9) / 64) * 64
  const padded = new Uint8Array(length)
  padded.set(message)
  padded[message.length] = 0x80
  const view = new DataView(padded.buffer)
  view.setUint32(length - 8, Math.floor(message.length / 0x20000000))
  view.setUint32(length - 4, (message.length << 3) >>> 0)
  const w = new Uint32Array(64)
  const rotr = (x: number, n: number) => (x >>> n) | (x << (32 - n))
  for (let offset = 0; offset < length; offset += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(offset + i * 4)
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15]!, 7) ^ rotr(w[i - 15]!, 18) ^ (w[i - 15]! >>> 3)
      const s1 = rotr(w[i - 2]!, 17) ^ rotr(w[i - 2]!, 19) ^ (w[i - 2]! >>> 10)
      w[i] = (w[i - 16]! + s0 + w[i - 7]! + s1) >>> 0
    }
    let [a, b, c, d, e, f, g, hh] = h as unknown as number[]
    for (let i = 0; i < 64; i++) {
      const t1 = (hh! + (rotr(e!, 6) ^ rotr(e!, 11) ^ rotr(e!, 25)) + ((e! & f!) ^ (~e! & g!)) + K[i]! + w[i]!) >>> 0
      const t2 = ((rotr(a!, 2) ^ rotr(a!, 13) ^ rotr(a!, 22)) + ((a! & b!) ^ (a! & c!) ^ (b! & c!))) >>> 0
      hh = g; g = f; f = e; e = (d! + t1) >>> 0; d = c; c = b; b = a; a = (t1 + t2) >>> 0
    }
    h[0]! += a!; h[1]! += b!; h[2]! += c!; h[3]! += d!; h[4]! += e!; h[5]! += f!; h[6]! += g!; h[7]! += hh!
  }
  const out = new Uint8Array(32)
  const outView = new DataView(out.buffer)
  for (let i = 0; i < 8; i++) outView.setUint32(i * 4, h[i]!)
  return out
}

function randomId (): string {
  const bytes = new Uint8Array(16)
  const random = (globalThis.crypto as Crypto | undefined)?.getRandomValues
  if (typeof random !== 'function') throw new TypeError('DPoP: this platform has no crypto.getRandomValues (React Native: install react-native-get-random-values)')
  random.call(globalThis.crypto, bytes)
  return base64url(bytes)
}

/** The URL as a proof names it (htu): no query, no fragment. */
export function htuOf (url: string): string {
  const parsed = new URL(url)
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`
}

export interface ProofRequest {
  method: string
  url: string
  /** The access token the request carries (ath). */
  accessToken?: string
  nonce?: string
  /** Seconds since the epoch. */
  iat: number
}

/** A DPoP proof JWT for one request, signed by the provider. */
export async function createProof (provider: DpopKeyProvider, request: ProofRequest): Promise<string> {
  const header = { typ: 'dpop+jwt', alg: provider.alg, jwk: await provider.publicJwk() }
  const payload: Record<string, unknown> = { jti: randomId(), htm: request.method.toUpperCase(), htu: htuOf(request.url), iat: request.iat }
  if (request.accessToken !== undefined) payload.ath = base64url(sha256(utf8(request.accessToken)))
  if (request.nonce !== undefined) payload.nonce = request.nonce
  const input = `${base64url(utf8(JSON.stringify(header)))}.${base64url(utf8(JSON.stringify(payload)))}`
  return `${input}.${base64url(await provider.sign(utf8(input)))}`
}
