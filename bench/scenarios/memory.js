// The server's resident memory after the scenarios before it, topped up to a fixed amount of work.
import { fire, refreshChains, round, tokenPerConnection } from '../lib/load.js'
import { memoryOf } from '../lib/processes.js'

const MEMORY_PROTECTED_REQUESTS = 100_000
const MEMORY_REFRESHES = 10_000
const mib = (bytes) => round(bytes / 2 ** 20, 1)

export default {
  needs: ['server', 'users'],
  async run (ctx) {
    const { options, served } = ctx
    const server = await ctx.provide.server()
    // Top up to these counts if the scenarios before served fewer (e.g. with --only=memory).
    if (served.protected < MEMORY_PROTECTED_REQUESTS) {
      const amount = MEMORY_PROTECTED_REQUESTS - served.protected
      ctx.log(`memory: ${amount} more protected requests`)
      const tokens = await ctx.freshAccessTokens()
      const result = await fire({ url: `${server.url}/auth/me`, connections: options.connections, setupClient: tokenPerConnection(tokens), amount })
      served.protected += result['2xx']
    }
    if (served.refreshes < MEMORY_REFRESHES) {
      const amount = MEMORY_REFRESHES - served.refreshes
      ctx.log(`memory: ${amount} more refreshes`)
      const chains = refreshChains(await ctx.freshRefreshTokens(options.connections))
      const result = await fire({ url: `${server.url}/auth/refresh`, connections: options.connections, setupClient: chains.setupClient, amount })
      served.refreshes += result['2xx']
    }
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const { rss, peakRss } = memoryOf(server.pid)
    const peak = Math.max(peakRss, server.memoryWatch.peak)
    const text = `${mib(rss).toFixed(0)} MiB (at start ${mib(server.startupRss).toFixed(0)}, peak ${mib(peak).toFixed(0)})`
    ctx.row(`server RSS after ${served.protected.toLocaleString('en-US')} protected + ${served.refreshes.toLocaleString('en-US')} refreshes`, undefined, {
      value: text,
      bar: { axis: 'linear', label: 'server RSS, MiB (dashed: at start)', value: mib(rss), reference: mib(server.startupRss), valueText: text }
    })
    ctx.results.memory = { startupRssMiB: mib(server.startupRss), rssMiB: mib(rss), peakRssMiB: mib(peak), protectedRequests: served.protected, refreshes: served.refreshes }
    ctx.methodNotes.push(`Memory: VmRSS of the server process after the scenarios before it (topped up to ${MEMORY_PROTECTED_REQUESTS.toLocaleString('en-US')} protected requests and ${MEMORY_REFRESHES.toLocaleString('en-US')} refreshes if they served fewer), 1 s after the load stops.`)
  }
}
