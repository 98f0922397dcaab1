// One sentence for a request that failed its route's schema, saying what the caller got wrong in the
// caller's own terms ("refreshToken must be a refresh token string of at most 512 characters"), not
// Ajv's list of every branch of a union, and never the value that was sent (it may be a token or a
// password). Built from the route's own schema (request-hygiene.ts sets it as every route's
// schemaErrorFormatter), so a new route gets readable messages by declaring its schema, whatever
// error handler it has; a field can word its expectation itself with the `description` annotation.
export interface SchemaError { instancePath: string, schemaPath: string, keyword: string, params: Record<string, unknown> }
type Schema = Record<string, unknown>

const WHERE: Record<string, string> = { body: 'The request body', querystring: 'The query string', params: 'The URL path', headers: 'The request headers' }

/** `/items/0/name` → `items[0].name`, as the caller wrote the field. */
function fieldName (instancePath: string): string {
  return instancePath.split('/').slice(1).map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((name, part) => /^\d+$/.test(part) ? `${name}[${part}]` : name === '' ? part : `${name}.${part}`, '')
}

/** The schema at a JSON pointer like `#/anyOf/0/properties/refreshToken`. */
function schemaAt (root: unknown, pointer: string): Schema | undefined {
  let node = root
  for (const part of pointer.replace(/^#\/?/, '').split('/').filter((segment) => segment !== '')) {
    if (node === null || typeof node !== 'object') return undefined
    node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')]
  }
  return node !== null && typeof node === 'object' ? node as Schema : undefined
}

function either (words: string[]): string {
  const unique = [...new Set(words)]
  return unique.length <= 1 ? (unique[0] ?? '') : `${unique.slice(0, -1).join(', ')} or ${unique[unique.length - 1]}`
}

function lengthClause (min: unknown, max: unknown): string {
  const low = typeof min === 'number' ? min : 0
  if (typeof max === 'number') return low > 1 ? ` of ${low} to ${max} characters` : ` of at most ${max} characters`
  return low > 1 ? ` of at least ${low} characters` : ''
}

function rangeClause (min: unknown, max: unknown): string {
  if (typeof min === 'number' && typeof max === 'number') return ` from ${min} to ${max}`
  if (typeof min === 'number') return ` of at least ${min}`
  if (typeof max === 'number') return ` of at most ${max}`
  return ''
}

/** What a value must be to satisfy a schema, as a noun phrase ("a string of at most 200 characters"). */
export function expectation (schema: Schema): string {
  if (typeof schema.description === 'string') return schema.description
  if (Array.isArray(schema.anyOf)) return either((schema.anyOf as Schema[]).map(expectation))
  if ('const' in schema) return JSON.stringify(schema.const)
  if (Array.isArray(schema.enum)) return either(schema.enum.map((value) => JSON.stringify(value)))
  switch (schema.type) {
    case 'string': {
      const nonEmpty = schema.minLength === 1 ? 'a non-empty string' : 'a string'
      return `${nonEmpty}${lengthClause(schema.minLength, schema.maxLength)}${typeof schema.format === 'string' ? ` in ${schema.format} format` : ''}`
    }
    case 'integer': return `a whole number${rangeClause(schema.minimum, schema.maximum)}`
    case 'number': return `a number${rangeClause(schema.minimum, schema.maximum)}`
    case 'boolean': return 'true or false'
    case 'null': return 'empty (null)'
    case 'array': return 'a list'
    case 'object': {
      const required = Array.isArray(schema.required) ? schema.required as string[] : []
      return required.length === 0 ? 'a JSON object' : `a JSON object with ${required.join(' and ')}`
    }
  }
  return 'a valid value'
}

/**
 * The one sentence for a schema failure: the deepest field that failed (where the caller's intent is
 * plainest: an object with a bad `refreshToken` was meant as the object branch of a union), and at
 * that field the widest rule (a union as a whole rather than each branch).
 */
export function validationMessage (routeSchema: unknown, errors: SchemaError[], context: string | undefined): string {
  const where = WHERE[context ?? ''] ?? 'The request'
  const failures = errors.filter((error) => typeof error.instancePath === 'string' && typeof error.schemaPath === 'string')
  if (failures.length === 0) return `${where} is not valid`
  const depth = (error: SchemaError) => error.instancePath === '' ? 0 : error.instancePath.split('/').length
  const deepest = Math.max(...failures.map(depth))
  const error = failures.filter((candidate) => depth(candidate) === deepest)
    .sort((a, b) => a.schemaPath.split('/').length - b.schemaPath.split('/').length)[0]!
  const field = fieldName(error.instancePath)
  const subject = field === '' ? where : field
  if (error.keyword === 'required') {
    const missing = String(error.params.missingProperty ?? '')
    return field === '' ? `${missing} is required` : `${field}.${missing} is required`
  }
  const partSchema = (routeSchema as Record<string, unknown> | undefined)?.[context ?? '']
  const failed = schemaAt(partSchema, error.schemaPath.split('/').slice(0, -1).join('/'))
  if (failed === undefined) return `${subject} is not valid`
  if (error.keyword === 'pattern' && failed.description === undefined) return `${subject} must be ${expectation(failed)} in the expected format`
  return `${subject} must be ${expectation(failed)}`
}
