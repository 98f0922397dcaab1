// Helpers for the revocation-feed tests: a resource server's credentials, an app that has them,
// and a Server-Sent Events reader over fetch.
import { setTimeout as sleep } from 'node:timers/promises'
import { testApp } from '../helpers.js'

export const RS = 'orders:orders-secret-0123456789,billing:billing-secret-0123456789'
export const ORDERS = `Basic ${Buffer.from('orders:orders-secret-0123456789').toString('base64')}`
export const BILLING = `Basic ${Buffer.from('billing:billing-secret-0123456789').toString('base64')}`

export interface Message { id?: string, data?: string, comment?: string }

/** A Server-Sent Events reader over fetch: messages as they arrive. */
export async function openStream (base: string, headers: Record<string, string> = {}) {
  const controller = new AbortController()
  const response = await fetch(`${base}/oauth/revocations/stream`, { headers: { authorization: ORDERS, ...headers }, signal: controller.signal })
  const messages: Message[] = []
  const parsed: any[] = []
  let lastId: string | undefined
  const waiters: Array<() => void> = []
  const done = (async () => {
    if (response.body === null) return
    const decoder = new TextDecoder()
    let buffered = ''
    try {
      for await (const chunk of response.body) {
        buffered += decoder.decode(chunk, { stream: true })
        const blocks = buffered.split('\n\n')
        buffered = blocks.pop()!
        for (const block of blocks) {
          const message: Message = {}
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) message.comment = line.slice(1).trim()
            else if (line.startsWith('id: ')) { message.id = line.slice(4); lastId = message.id }
            else if (line.startsWith('data: ')) message.data = line.slice(6)
          }
          messages.push(message)
          if (message.data !== undefined) parsed.push(JSON.parse(message.data))
          for (const wake of waiters.splice(0)) wake()
        }
      }
    } catch {
      // aborted
    }
  })()
  const events = () => parsed
  async function until (predicate: () => boolean, limitMs = 5000) {
    const started = Date.now()
    while (!predicate()) {
      if (Date.now() - started > limitMs) throw new Error(`stream: timed out waiting (${parsed.length} events, ${messages.length} messages)`)
      await Promise.race([new Promise<void>((resolve) => waiters.push(resolve)), sleep(50)])
    }
  }
  return { response, messages, events, until, get lastId () { return lastId }, close: async () => { controller.abort(); await done } }
}

export async function feedApp (t: Parameters<typeof testApp>[0], database: 'sqlite' | 'postgresql', env: Record<string, string> = {}) {
  const app = await testApp(t, { database, env: { RESOURCE_SERVERS: RS, ...env } })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, base }
}

