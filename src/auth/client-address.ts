// The client address as the limits count it. One IPv6 client usually owns a whole prefix (a /64 is
// the smallest a provider hands out), so counting each address on its own would give it 2^64 fresh
// budgets: IPv6 addresses are grouped by a configurable prefix, and an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 clients) counts as its IPv4 address. Both the
// per-address request limit (@fastify/rate-limit) and the login throttle key on this.
import { isIPv4 } from 'node:net'
import { normalizeIP } from '@fastify/rate-limit'

export const DEFAULT_IPV6_PREFIX_LENGTH = 64

/** How a dual-stack socket (`HOST=::`) reports every IPv4 client: `::ffff:a.b.c.d`. */
const MAPPED_IPV4_PREFIX = '::ffff:'

/** The address's bucket: IPv4 as is, IPv6 as the first address of its /prefixLength network. */
export function clientAddressKey (address: string, prefixLength = DEFAULT_IPV6_PREFIX_LENGTH): string {
  // The common spelling of a mapped address, read without the IPv6 parser (~9 µs a request, on every
  // limited route); any other spelling of one (`0:0:0:0:0:ffff:…`, `::ffff:c000:201`) is the parser's.
  if (address.length > MAPPED_IPV4_PREFIX.length && address.slice(0, MAPPED_IPV4_PREFIX.length).toLowerCase() === MAPPED_IPV4_PREFIX) {
    const ipv4 = address.slice(MAPPED_IPV4_PREFIX.length)
    if (isIPv4(ipv4)) return ipv4
  }
  try {
    return normalizeIP(address, prefixLength)
  } catch {
    // Not an address the parser reads (a bogus forwarded header): counted as the text it is.
    return address.toLowerCase()
  }
}
