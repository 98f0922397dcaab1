// The auth domain (src/auth/domain.ts: accounts, sessions, the revocation list and what they need),
// built once for this server from its database, clock, configuration and stores, and decorated on
// the instance for the routes and the plugins that follow.
import fp from 'fastify-plugin'
import type { AccountService } from '../auth/accounts.js'
import { buildAuthDomain } from '../auth/domain.js'
import { MemoryLoginAttemptStore, RedisLoginAttemptStore } from '../auth/login-throttle.js'
import type { PasswordHasher } from '../auth/passwords.js'
import type { RevocationList } from '../auth/revocation-list.js'
import type { SessionService } from '../auth/sessions.js'
import type { Clock } from '../auth/token-rules.js'

declare module 'fastify' {
  interface FastifyInstance {
    accounts: AccountService
    sessions: SessionService
    revocations: RevocationList
    passwordHasher: PasswordHasher
  }
}

export interface AuthDomainPluginOptions { clock: Clock }

export default fp(async function authDomain (fastify, { clock }: AuthDomainPluginOptions) {
  const { config, db } = fastify
  const localAttempts = new MemoryLoginAttemptStore(clock)
  const { revocations, passwordHasher, sessions, accounts } = buildAuthDomain({
    db,
    clock,
    config,
    // Lock-outs are shared by every instance through Redis, each instance's memory standing in while it is away.
    loginAttempts: fastify.redis === null ? localAttempts : new RedisLoginAttemptStore(fastify.redis, localAttempts, clock),
    events: fastify.authEvents,
    signAccessToken: fastify.accessTokens.sign
  })
  await revocations.load()
  await accounts.backfillUsernameSkeletons()

  fastify.decorate('accounts', accounts)
  fastify.decorate('sessions', sessions)
  fastify.decorate('revocations', revocations)
  fastify.decorate('passwordHasher', passwordHasher)
}, { name: 'auth-domain', dependencies: ['database', 'redis', 'auth-events', 'access-tokens'] })
