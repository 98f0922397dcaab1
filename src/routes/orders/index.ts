// /orders: the protected demo resource. Every query is scoped to the caller, so another user's order
// is indistinguishable from a missing one (404).
import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { Type, type TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NotFound } from '../../errors.js'
import { NoContent, errorResponses } from '../error-schemas.js'
import { IdParams, Timestamp, WITHOUT_NUL } from '../shared-schemas.js'

const OrderInput = Type.Object({
  item: Type.String({ minLength: 1, maxLength: 200, pattern: WITHOUT_NUL }),
  quantity: Type.Integer({ minimum: 1, maximum: 1_000_000 })
}, { additionalProperties: false })
const Order = Type.Object({
  id: Type.String(),
  item: Type.String(),
  quantity: Type.Integer(),
  createdAt: Timestamp,
  updatedAt: Timestamp
})
const OrderParams = IdParams
const OrderMissing = errorResponses({ 404: ['NOT_FOUND'] })
const ORDER_FIELDS = { id: true, item: true, quantity: true, createdAt: true, updatedAt: true } as const

export default async function orderRoutes (app: FastifyInstance) {
  const fastify = app.withTypeProvider<TypeBoxTypeProvider>()
  const { db } = fastify

  fastify.get('/orders', { schema: { tags: ['orders'], summary: 'The caller\'s orders, newest first (at most 100)', response: { 200: Type.Object({ orders: Type.Array(Order) }) } } }, async (request) => {
    const orders = await db.order.findMany({
      where: { userId: request.principal!.userId },
      orderBy: { createdAt: 'desc' },
      take: 100,
      select: ORDER_FIELDS
    })
    return { orders }
  })

  fastify.post('/orders', { schema: { tags: ['orders'], summary: 'Place an order', body: OrderInput, response: { 201: Type.Object({ order: Order }) } } }, async (request, reply) => {
    const now = new Date()
    const order = await db.order.create({
      data: { id: randomUUID(), userId: request.principal!.userId, ...request.body, createdAt: now, updatedAt: now },
      select: ORDER_FIELDS
    })
    return reply.code(201).send({ order })
  })

  fastify.get('/orders/:id', { schema: { tags: ['orders'], summary: 'One of the caller\'s orders', params: OrderParams, response: { 200: Type.Object({ order: Order }), ...OrderMissing } } }, async (request) => {
    const order = await db.order.findFirst({ where: { id: request.params.id, userId: request.principal!.userId }, select: ORDER_FIELDS })
    if (order === null) throw new NotFound('No such order')
    return { order }
  })

  fastify.put('/orders/:id', { schema: { tags: ['orders'], summary: 'Change an order', params: OrderParams, body: OrderInput, response: { 200: Type.Object({ order: Order }), ...OrderMissing } } }, async (request) => {
    const where = { id: request.params.id, userId: request.principal!.userId }
    const updated = await db.order.updateMany({ where, data: { ...request.body, updatedAt: new Date() } })
    if (updated.count === 0) throw new NotFound('No such order')
    return { order: await db.order.findFirstOrThrow({ where, select: ORDER_FIELDS }) }
  })

  fastify.delete('/orders/:id', { schema: { tags: ['orders'], summary: 'Delete an order', params: OrderParams, response: { 204: NoContent('The order was deleted'), ...OrderMissing } } }, async (request, reply) => {
    const deleted = await db.order.deleteMany({ where: { id: request.params.id, userId: request.principal!.userId } })
    if (deleted.count === 0) throw new NotFound('No such order')
    return reply.code(204).send()
  })
}
