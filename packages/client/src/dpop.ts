// DPoP (RFC 9449) for the client: a key pair whose private half never leaves its keeper proves, with
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
    pair ??= (async () => {
      const kept = await store?.get(name).catch(() => undefined)
      if (kept?.privateKey !== undefined && kept.publicKey !== undefined) return kept
      const made = await subtle().generateKey(algorithm.generate as EcKeyGenParams, false, ['sign', 'verify']) as CryptoKeyPair
      await store?.set(name, made).catch(() => {})
      return made
    })()
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
