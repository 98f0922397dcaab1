// HTTP Basic authentication of resource servers (RFC 6749 §2.3.1, `client_secret_basic`) against
// RESOURCE_SERVERS, for introspection and the revocation feed. Every configured pair is compared,
// in constant time, whatever matched first; secrets never reach a log or an error message.
import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { ResourceServerCredential } from '../../config.js'
import { InvalidClient, NotFound } from '../../errors.js'

const BASIC = /^Basic +([A-Za-z0-9+/]+={0,2}) *$/i

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined and base64-encoded. */
function formDecode (value: string): string | null {
  try {
    return decodeURIComponent(value.replace(/\+/g, ' '))
  } catch {
    return null
  }
}

export function resourceServerAuthenticator (servers: ResourceServerCredential[]) {
  const known = servers.map((server) => ({ id: server.id, idDigest: digest(server.id), secretDigest: digest(server.secret) }))
  const invalidClient = () => new InvalidClient('Resource server authentication failed')

  /** The authenticated resource server's id; throws 404 while none is configured, 401 invalid_client otherwise. */
  return function authenticateResourceServer (request: FastifyRequest): string {
    if (known.length === 0) throw new NotFound(`Route ${request.method}:${request.url.split('?')[0]} not found`)
    const match = BASIC.exec(request.headers.authorization ?? '')
    if (match === null) throw invalidClient()
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    if (colon < 0) throw invalidClient()
    const id = formDecode(decoded.slice(0, colon))
    const secret = formDecode(decoded.slice(colon + 1))
    if (id === null || secret === null) throw invalidClient()
    const idDigest = digest(id)
    const secretDigest = digest(secret)
    let matched: string | undefined
    for (const server of known) {
      // Both comparisons run for every entry, so the time taken says nothing about which part differed.
      const sameId = timingSafeEqual(idDigest, server.idDigest)
      const sameSecret = timingSafeEqual(secretDigest, server.secretDigest)
      if (sameId && sameSecret) matched = server.id
    }
    if (matched === undefined) throw invalidClient()
    return matched
  }
}
