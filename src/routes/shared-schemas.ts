// Schema pieces used by more than one route area.
import { Type } from '@fastify/type-provider-typebox'

/** A Date in handlers, an ISO 8601 string on the wire (the serializer formats it). */
export const Timestamp = Type.Unsafe<Date>(Type.String({ format: 'date-time' }))

/** PostgreSQL text cannot hold U+0000: such input is refused (400) instead of failing (500) at the query. */
export const WITHOUT_NUL = '^[^\\u0000]*$'

/** The `:id` of a session or an order. */
export const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 128, pattern: WITHOUT_NUL }) })
