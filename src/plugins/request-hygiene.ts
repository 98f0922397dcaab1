// What no request may carry, whatever route it names: checked once here, for every route, present
// and future, before any schema or handler sees the input.
//
// - Two Host headers (RFC 9112 §3.2: a server MUST answer 400). Node keeps only the first.
// - Text that is not well-formed Unicode: a JSON body whose bytes are not UTF-8 (Node would turn
//   them into U+FFFD), or any string in the body, query or path parameters (keys too) holding an
//   unpaired surrogate (JSON's "\ud800" escape) or NUL. A password with a lone surrogate would
//   otherwise match other lone surrogates after the hasher's UTF-8 conversion, an order item would
//   be stored as replacement characters, and PostgreSQL cannot store NUL at all (a 500).
// A route gets all of this by being registered on the app: nothing to declare. Schema failures are
// worded here too (see validation-messages.ts).
import { isUtf8 } from 'node:buffer'
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ValidationFailed } from '../errors.js'
import { type SchemaError, validationMessage } from './validation-messages.js'

/** NUL, or a surrogate that is not half of a pair (with the u flag, a pair is one astral code point). */
const ILL_FORMED = /[\u0000\p{Cs}]/u

function problemWith (text: string): string | null {
  const match = ILL_FORMED.exec(text)
  if (match === null) return null
  return match[0] === '\u0000' ? 'must not contain the NUL character (U+0000)' : 'must be well-formed Unicode text (it holds an unpaired surrogate)'
}

/** `item`, `items[0].name`: a field as the caller wrote it. */
function fieldName (path: Array<string | number>): string {
  return path.reduce<string>((name, part) => typeof part === 'number' ? `${name}[${part}]` : name === '' ? part : `${name}.${part}`, '')
}

/** The first ill-formed string in a parsed value (walked without recursion: a body may nest deeply). */
export function illFormedText (value: unknown, where: string): string | null {
  // Most requests have no body and no parameters: nothing to walk.
  if (value === undefined || value === null) return null
  const pending: Array<{ value: unknown, path: Array<string | number> }> = [{ value, path: [] }]
  while (pending.length > 0) {
    const { value, path } = pending.pop()!
    if (typeof value === 'string') {
      const problem = problemWith(value)
      if (problem !== null) return path.length === 0 ? `The ${where} ${problem}` : `${fieldName(path)} ${problem}`
    } else if (Array.isArray(value)) {
      value.forEach((item, index) => pending.push({ value: item, path: [...path, index] }))
    } else if (value !== null && typeof value === 'object') {
      for (const [key, item] of Object.entries(value)) {
        const problem = problemWith(key)
        if (problem !== null) return `A field name in the ${where} ${problem}`
        pending.push({ value: item, path: [...path, key] })
      }
    }
  }
  return null
}

function countHostHeaders (request: FastifyRequest): number {
  const raw = request.raw.rawHeaders
  let count = 0
  // Only a four-letter name can be Host: the others are not lower-cased (one string less per header).
  for (let index = 0; index < raw.length; index += 2) {
    const name = raw[index]!
    if (name.length === 4 && name.toLowerCase() === 'host') count++
  }
  return count
}

export default fp(async function requestHygiene (fastify) {
  // Every route's schema failures read as one sentence built from that route's schema
  // (validation-messages.ts), unless the route words them itself.
  fastify.addHook('onRoute', (route) => {
    if (route.schemaErrorFormatter !== undefined) return
    const schema = route.schema
    route.schemaErrorFormatter = (errors, context) => new ValidationFailed(validationMessage(schema, errors as unknown as SchemaError[], context))
  })

  fastify.addHook('onRequest', function singleHost (request, _reply, done) {
    if (countHostHeaders(request) > 1) return done(new ValidationFailed('The request has more than one Host header'))
    done()
  })

  // The JSON parser sees the bytes first: ones that are not UTF-8 are refused, not replaced.
  const parseJson = fastify.getDefaultJsonParser('error', 'error')
  fastify.removeContentTypeParser('application/json')
  fastify.addContentTypeParser('application/json', { parseAs: 'buffer' }, function (request, body, done) {
    const bytes = body as Buffer
    if (!isUtf8(bytes)) return done(new ValidationFailed('The request body must be UTF-8 encoded JSON'), undefined)
    parseJson(request, bytes.toString('utf8'), done)
  })

  fastify.addHook('preValidation', function wellFormedInput (request, _reply, done) {
    const problem = illFormedText(request.params, 'URL path') ?? illFormedText(request.query, 'query string') ?? illFormedText(request.body, 'body')
    if (problem !== null) return done(new ValidationFailed(problem))
    done()
  })
}, { name: 'request-hygiene' })
