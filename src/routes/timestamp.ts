import { Type } from '@fastify/type-provider-typebox'

/** A Date in handlers, an ISO 8601 string on the wire (the serializer formats it). */
export const Timestamp = Type.Unsafe<Date>(Type.String({ format: 'date-time' }))
