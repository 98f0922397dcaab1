// The auth domain's housekeeping on timers: other instances' revocations are polled from the event
// log, expired revocations forgotten, sealed successors erased soon after their grace window, and
// expired tokens and sessions pruned. Timers are unref'd and cleared at close.
import fp from 'fastify-plugin'

export default fp(async function maintenance (fastify) {
  const { config, revocations, sessions } = fastify
  const warnOnFailure = (what: string) => (error: unknown) => fastify.log.warn({ err: error }, what)

  // Other instances' revocations arrive by polling the event log; expired entries are forgotten.
  const poll = setInterval(() => {
    revocations.poll().catch(warnOnFailure('revocation poll failed'))
  }, config.revocationPollIntervalMs)
  const forget = setInterval(() => revocations.prune(), 60_000)
  // Sealed successors must not outlive the grace window by much; the full prune runs hourly.
  const eraseSeals = setInterval(() => {
    sessions.eraseExpiredSeals().catch(warnOnFailure('erasing sealed refresh tokens failed'))
  }, Math.min(60, Math.max(1, config.ttl.reuseGrace)) * 1000)
  const prune = setInterval(() => {
    sessions.prune().catch(warnOnFailure('pruning expired tokens failed'))
  }, 3600_000)
  const timers = [poll, forget, eraseSeals, prune]
  for (const timer of timers) timer.unref()
  fastify.addHook('onClose', async () => {
    for (const timer of timers) clearInterval(timer)
  })
}, { name: 'maintenance', dependencies: ['auth-domain'] })
