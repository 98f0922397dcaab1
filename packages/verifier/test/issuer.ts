// A small issuer written in the server's protocol (RFC 8414 metadata, JWKS, the revocation snapshot
// and SSE stream), so each edge of the verifier can be driven: key rotation, a flood of unknown kids,
// a cut stream, a feed that goes silent, tokens with any claims.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import type { RevocationEvent } from '../src/index.js'

export const AUDIENCE = 'api'
export const CLIENT = { clientId: 'orders', clientSecret: 'orders-secret-0123456789' }

export async function issuer (port = 0) {
  let keys = [{ kid: 'k1', ...(await generateKeyPair('EdDSA', { extractable: true })) }]
  const events: RevocationEvent[] = []
  const streams = new Set<ServerResponse>()
  let jwksFetches = 0
  let feedUp = true
  const lastEventIds: Array<string | undefined> = []
  const expected = `Basic ${Buffer.from(`${CLIENT.clientId}:${CLIENT.clientSecret}`).toString('base64')}`
  const server = createServer(async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', base)
    const send = (status: number, body: unknown) => { response.writeHead(status, { 'content-type': 'application/json' }); response.end(JSON.stringify(body)) }
    if (url.pathname === '/.well-known/oauth-authorization-server') {
      return send(200, { issuer: base, jwks_uri: `${base}/jwks`, revocation_feed_endpoint: `${base}/oauth/revocations` })
    }
    if (url.pathname === '/jwks') {
      jwksFetches++
      return send(200, { keys: await Promise.all(keys.map(async (key) => ({ ...(await exportJWK(key.publicKey)), kid: key.kid, alg: 'EdDSA', use: 'sig' }))) })
    }
    if (request.headers.authorization !== expected) return send(401, { error: 'invalid_client' })
    if (!feedUp) return send(503, { error: 'unavailable' })
    const after = (cursor: string | undefined) => events.filter((event) => cursor === undefined || Number(event.id) > Number(cursor))
    if (url.pathname === '/oauth/revocations') return send(200, { events: after(url.searchParams.get('after') ?? undefined), cursor: String(events.length) })
    if (url.pathname === '/oauth/revocations/stream') {
      const cursor = request.headers['last-event-id'] as string | undefined
      lastEventIds.push(cursor)
      response.writeHead(200, { 'content-type': 'text/event-stream' })
      for (const event of after(cursor)) response.write(`id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`)
      response.write(`id: ${events.length}\n\n`)
      streams.add(response)
      response.on('close', () => streams.delete(response))
      return
    }
    send(404, {})
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const revoke = (event: Omit<RevocationEvent, 'id' | 'at' | 'relevantUntil'>, push = true) => {
    const full = { ...event, id: String(events.length + 1), at: new Date().toISOString(), relevantUntil: new Date(Date.now() + 960_000).toISOString() } as RevocationEvent
    events.push(full)
    if (push) for (const stream of streams) stream.write(`id: ${full.id}\ndata: ${JSON.stringify(full)}\n\n`)
  }
  const sign = async (claims: Record<string, unknown> = {}, options: { kid?: string, typ?: string, expiresIn?: number | string } = {}) => {
    const key = keys.find((candidate) => candidate.kid === (options.kid ?? keys[0]!.kid)) ?? keys[0]!
    return new SignJWT({ sid: 's1', ver: 0, jti: crypto.randomUUID(), ...claims })
      .setProtectedHeader({ alg: 'EdDSA', typ: options.typ ?? 'at+jwt', kid: options.kid ?? key.kid })
      .setIssuer(base).setAudience(AUDIENCE).setSubject(String(claims.sub ?? 'u1')).setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '15m')
      .sign(key.privateKey)
  }
  return {
    base,
    sign,
    revoke,
    get jwksFetches () { return jwksFetches },
    lastEventIds,
    rotate: async () => { keys = [{ kid: `k${keys.length + 1}`, ...(await generateKeyPair('EdDSA', { extractable: true })) }, ...keys] },
    cutStreams: () => { for (const stream of streams) stream.destroy() },
    setFeedUp: (up: boolean) => { feedUp = up },
    close: async () => { for (const stream of streams) stream.destroy(); await new Promise((resolve) => server.close(resolve)) }
  }
}

