// DPoP proofs as a real client makes them, for the load generator: a WebCrypto P-256 key pair per
// session (non-extractable, as the SDK's default), and a fresh proof (new jti, current iat) signed
// for every request. Signing is synchronous (node:crypto on the same key) because autocannon's
// setupRequest is; its cost is the load generator's and is measured apart (proofCostUs).
import { KeyObject, randomBytes, sign, webcrypto } from 'node:crypto'
import { BENCH_PASSWORD, mapLimit } from './accounts.js'

const b64 = (value) => Buffer.from(JSON.stringify(value)).toString('base64url')

export async function dpopKey () {
  const pair = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify'])
  const { kty, crv, x, y } = await webcrypto.subtle.exportKey('jwk', pair.publicKey)
  return { header: b64({ typ: 'dpop+jwt', alg: 'ES256', jwk: { kty, crv, x, y } }), privateKey: KeyObject.from(pair.privateKey) }
}

export function proof (key, htm, htu) {
  const input = `${key.header}.${b64({ jti: randomBytes(16).toString('base64url'), htm, htu, iat: Math.floor(Date.now() / 1000) })}`
  return `${input}.${sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`
}

/** The load generator's CPU per proof (µs), timed over `count` proofs. */
export async function proofCostUs (count = 2000) {
  const key = await dpopKey()
  const started = process.cpuUsage()
  for (let i = 0; i < count; i++) proof(key, 'POST', 'http://127.0.0.1:1/auth/refresh')
  const { user, system } = process.cpuUsage(started)
  return (user + system) / count
}

/** A session per username, logged in with a proof: { key, refreshToken }, bound to its key. */
export async function boundSessions (baseUrl, usernames) {
  return mapLimit(usernames, 4, async (username) => {
    const key = await dpopKey()
    const response = await fetch(`${baseUrl}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', dpop: proof(key, 'POST', `${baseUrl}/auth/login`) },
      body: JSON.stringify({ username, password: BENCH_PASSWORD })
    })
    const body = await response.json()
    if (response.status !== 200 || body.tokenType !== 'DPoP') throw new Error(`DPoP login ${username}: ${response.status} ${JSON.stringify(body)}`)
    return { key, refreshToken: body.refreshToken }
  })
}

/** As lib/load.js refreshChains, each request with its own fresh proof by the chain's key. */
export function dpopRefreshChains (baseUrl, sessions) {
  let next = 0
  const breaks = {}
  const chains = []
  const htu = `${baseUrl}/auth/refresh`
  function setupClient (client) {
    if (next >= sessions.length) throw new Error(`DPoP refresh chains: more connections than sessions (${sessions.length})`)
    const chain = { ...sessions[next++], rotations: 0 }
    chains.push(chain)
    client.setRequests([{
      method: 'POST',
      path: '/auth/refresh',
      headers: { 'content-type': 'application/json' },
      setupRequest: (request) => ({
        ...request,
        headers: { ...request.headers, dpop: proof(chain.key, 'POST', htu) },
        body: JSON.stringify({ refreshToken: chain.refreshToken })
      }),
      onResponse: (status, body) => {
        if (status === 200) {
          chain.refreshToken = JSON.parse(body).refreshToken
          chain.rotations++
          return
        }
        let code = String(status)
        try { code = `${status} ${JSON.parse(body).code}` } catch {}
        breaks[code] = (breaks[code] ?? 0) + 1
      }
    }])
  }
  return { setupClient, breaks, get perChain () { return chains.map((chain) => chain.rotations) } }
}
