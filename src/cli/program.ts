// The operator CLI, `npx auth-server <command>`: users, sessions, tokens, keys and the database, with
// the server's own configuration (src/config.ts, .env included) and its own domain (buildAuthDomain).
// Exit status: 0 done, 1 failed (unknown user, unreachable database, …), 2 usage (bad arguments or
// input, a destructive command without confirmation).
import { randomUUID } from 'node:crypto'
import { Command, CommanderError, Option } from 'commander'
import cliProgress from 'cli-progress'
import { type AuthDomain, buildAuthDomain } from '../auth/domain.js'
import type { PruneStep } from '../auth/sessions.js'
import { usernameProblem } from '../auth/usernames.js'
import { type Config, ConfigError, loadConfig } from '../config.js'
import { type Db, createDbClient } from '../db/client.js'
import { applyMigrations, migrationStatus } from '../db/migrate.js'
import { DOORBELL_CHANNEL } from '../plugins/revocation-doorbell.js'
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_USAGE, type Output, confirmOrRefuse, output, readPassword, table } from './io.js'
import { KEY_TYPES, KeyFileExists, type KeyType, generateKeyFiles, rotationAdvice } from './keys.js'

/** The configuration, database and domain, made when a command first needs them and closed at the end. */
class Operator {
  private loaded: Config | undefined
  private db: Db | undefined
  private built: AuthDomain | undefined

  config (): Config {
    this.loaded ??= loadConfig()
    return this.loaded
  }

  /** The domain on a migrated database, as the server builds it at start. */
  async domain (): Promise<AuthDomain> {
    if (this.built === undefined) {
      const config = this.config()
      await applyMigrations(config.database)
      this.db = await createDbClient(config.database)
      this.built = buildAuthDomain({ db: this.db, clock: Date.now, config })
    }
    return this.built
  }

  /**
   * Revocations reach every instance through the log they poll (REVOCATION_POLL_INTERVAL_MS); with
   * Redis configured, the doorbell makes them read it at once. Best effort: polling covers a failure.
   */
  async ringDoorbell (): Promise<void> {
    const url = this.config().redisUrl
    if (url === undefined) return
    const { Redis } = await import('ioredis')
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2000, retryStrategy: () => null })
    redis.on('error', () => {})
    try {
      await redis.connect()
      await redis.publish(DOORBELL_CHANNEL, `cli-${randomUUID()}`)
    } catch {
    } finally {
      redis.disconnect()
    }
  }

  async close (): Promise<void> {
    await this.db?.$disconnect()
  }
}

const shortUser = (user: { id: string, username: string }) => `${user.username} (${user.id})`

export function buildProgram (operator: Operator, run: (action: (out: Output) => Promise<void>) => Promise<void>, writeErr: (text: string) => void): Command {
  const program = new Command('auth-server')
    .description('Operate the auth server: users, sessions, tokens, keys and the database.\nReads the same configuration as the server (environment variables, .env).')
    .option('--json', 'print results as JSON (errors too, on stderr)')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    // Set before the subcommands are made: they copy it.
    .configureOutput({ writeErr })
  const yes = new Option('-y, --yes', 'do it without asking (required when there is no terminal to ask on)')

  const users = program.command('users').description('list, create, disable, enable, delete users; reset a password')
  users.command('list').description('every user, with the number of live sessions')
    .action(() => run(async (out) => {
      const list = await (await operator.domain()).admin.listUsers()
      out.result({ users: list }, list.length === 0 ? 'No users.' : table(list, ['username', 'id', 'disabled', 'liveSessions', 'createdAt']))
    }))
  users.command('create').argument('<username>').description('create a user (password from stdin, or asked for); same rules as POST /auth/register')
    .action((username: string) => run(async (out) => {
      // The username is checked before the password is asked for; register checks both again.
      const problem = usernameProblem(username)
      if (problem !== null) throw new CliError(problem, EXIT_USAGE, 'VALIDATION_ERROR')
      const { admin } = await operator.domain()
      const user = await admin.createUser(username, await readPassword())
      out.result({ user }, `Created ${shortUser(user)}.`)
    }))
  users.command('disable').argument('<username>').addOption(yes).description('refuse logins and refreshes, end every session and access token')
    .action((username: string, options: { yes?: boolean }) => run(async (out) => {
      const { admin } = await operator.domain()
      const user = await admin.findUser(username)
      await confirmOrRefuse(`Disable ${shortUser(user)} and end all their sessions?`, options.yes)
      const changed = await admin.setDisabled(username, true)
      await operator.ringDoorbell()
      out.result({ user: { id: user.id, username: user.username, disabled: true }, changed }, changed ? `Disabled ${shortUser(user)}.` : `${shortUser(user)} was already disabled.`)
    }))
  users.command('enable').argument('<username>').description('let a disabled user log in again (their old sessions stay ended)')
    .action((username: string) => run(async (out) => {
      const { admin } = await operator.domain()
      const user = await admin.findUser(username)
      const changed = await admin.setDisabled(username, false)
      out.result({ user: { id: user.id, username: user.username, disabled: false }, changed }, changed ? `Enabled ${shortUser(user)}.` : `${shortUser(user)} was not disabled.`)
    }))
  users.command('delete').argument('<username>').addOption(yes).description('delete a user with their sessions, orders and history; their tokens stop working')
    .action((username: string, options: { yes?: boolean }) => run(async (out) => {
      const { admin } = await operator.domain()
      const user = await admin.findUser(username)
      await confirmOrRefuse(`Delete ${shortUser(user)} and everything of theirs?`, options.yes)
      const deleted = await admin.deleteUser(username)
      await operator.ringDoorbell()
      out.result({ user: deleted, deleted: true }, `Deleted ${shortUser(deleted)}.`)
    }))
  users.command('reset-password').argument('<username>').addOption(yes)
    .description('set a new password (from stdin, or asked for) and end every session of the user')
    .action((username: string, options: { yes?: boolean }) => run(async (out) => {
      const { admin } = await operator.domain()
      const user = await admin.findUser(username)
      const password = await readPassword()
      await confirmOrRefuse(`Set a new password for ${shortUser(user)} and end all their sessions?`, options.yes)
      const result = await admin.resetPassword(username, password)
      await operator.ringDoorbell()
      out.result(result, `New password set for ${shortUser(result.user)}; ${result.sessionsEnded} session(s) ended.`)
    }))

  const sessions = program.command('sessions').description('list or revoke sessions')
  sessions.command('list').argument('<username>').description("the user's live sessions")
    .action((username: string) => run(async (out) => {
      const result = await (await operator.domain()).admin.listSessions(username)
      out.result(result, result.sessions.length === 0
        ? `${shortUser(result.user)} has no live sessions.`
        : table(result.sessions, ['id', 'client', 'createdAt', 'lastUsedAt', 'refreshCount', 'ip', 'userAgent']))
    }))
  sessions.command('revoke').argument('[id]', 'the session to end').option('--user <username>', "end every session of this user instead").addOption(yes)
    .description('end one session, or every session of a user (their access tokens stop working)')
    .action((id: string | undefined, options: { user?: string, yes?: boolean }) => run(async (out) => {
      if ((id === undefined) === (options.user === undefined)) throw new CliError('Give a session id or --user <username>, not both or neither.', EXIT_USAGE)
      const { admin } = await operator.domain()
      if (options.user !== undefined) {
        const user = await admin.findUser(options.user)
        await confirmOrRefuse(`End every session of ${shortUser(user)}?`, options.yes)
        const result = await admin.revokeUserSessions(options.user)
        await operator.ringDoorbell()
        out.result(result, `${result.sessionsEnded} session(s) of ${shortUser(result.user)} ended.`)
      } else {
        await confirmOrRefuse(`End session ${id}?`, options.yes)
        await admin.revokeSession(id!)
        await operator.ringDoorbell()
        out.result({ session: { id }, revoked: true }, `Session ${id} ended.`)
      }
    }))

  program.command('tokens').description('maintain refresh tokens and sessions')
    .command('prune').description('delete expired sessions, refresh tokens, revocation events and old session history (the server also does it hourly)')
    .action(() => run(async (out) => {
      const { sessions } = await operator.domain()
      const progress = pruneProgress(out)
      const result = await sessions.prune(progress.update).finally(progress.stop)
      out.result(result, [
        `Sessions deleted: ${result.sessionsDeleted} (${result.sessionsExpired} recorded as expired)`,
        `Refresh tokens deleted: ${result.tokensDeleted}`,
        `Sealed successors erased: ${result.sealsErased}`,
        `Revocation events deleted: ${result.eventsDeleted}`,
        `Session history events deleted: ${result.sessionEventsDeleted}`
      ].join('\n'))
    }))

  program.command('keys').description('signing keys')
    .command('generate').description('write a new signing key pair (jwt-private-key.pem, jwt-public-key.pem) and say how to rotate to it')
    .addOption(new Option('--type <type>', 'key type').choices(KEY_TYPES).default('ed25519'))
    .option('--out <dir>', 'folder to write the key files to', 'data')
    .action((options: { type: KeyType, out: string }) => run(async (out) => {
      let keys
      try {
        keys = generateKeyFiles(options.type, options.out)
      } catch (error) {
        if (error instanceof KeyFileExists) throw new CliError(error.message, EXIT_FAILED, 'KEY_EXISTS')
        throw error
      }
      out.result(keys, rotationAdvice(keys))
    }))

  const db = program.command('db').description('the database schema')
  db.command('migrate').description('apply pending migrations (the server also does it at start)')
    .action(() => run(async (out) => {
      const applied = await applyMigrations(operator.config().database)
      out.result({ applied }, applied.length === 0 ? 'Database is up to date.' : `Applied: ${applied.join(', ')}`)
    }))
  db.command('status').description('applied and pending migrations; exits 1 unless the database is up to date')
    .action(() => run(async (out) => {
      const status = await migrationStatus(operator.config().database)
      const upToDate = status.pending.length === 0 && status.unknown.length === 0 && status.changed.length === 0
      out.result({ ...status, upToDate }, [
        `Applied: ${status.applied.length === 0 ? 'none' : status.applied.join(', ')}`,
        `Pending: ${status.pending.length === 0 ? 'none' : status.pending.join(', ')}`,
        ...(status.unknown.length > 0 ? [`Unknown to this build (is it older than the database?): ${status.unknown.join(', ')}`] : []),
        ...(status.changed.length > 0 ? [`Changed after being applied: ${status.changed.join(', ')}`] : []),
        upToDate ? 'Database is up to date.' : 'Database is not up to date.'
      ].join('\n'))
      if (!upToDate) process.exitCode = EXIT_FAILED
    }))

  return program
}

/** A bar per prune step on a terminal; a line per step otherwise; nothing with --json. */
function pruneProgress (out: Output): { update: (step: PruneStep, done: number, total: number) => void, stop: () => void } {
  if (out.json) return { update: () => {}, stop: () => {} }
  if (process.stderr.isTTY !== true) {
    return { update: (step, done, total) => { if (done === total) out.note(`${step}: ${done}/${total}`) }, stop: () => {} }
  }
  const bars = new cliProgress.MultiBar({ stream: process.stderr, format: '{step} [{bar}] {value}/{total}', hideCursor: true }, cliProgress.Presets.shades_classic)
  const byStep = new Map<PruneStep, cliProgress.SingleBar>()
  return {
    update: (step, done, total) => {
      let bar = byStep.get(step)
      if (bar === undefined) {
        bar = bars.create(total, done, { step: step.padEnd(14) })
        byStep.set(step, bar)
      }
      bar.setTotal(total)
      bar.update(done)
    },
    stop: () => bars.stop()
  }
}

/** Runs the CLI with these arguments (without `node` and the script); resolves to the exit status. */
export async function runCli (argv: string[]): Promise<number> {
  const operator = new Operator()
  let json = argv.includes('--json')
  let status = EXIT_OK
  const fail = (code: string, message: string, exitCode: number) => {
    process.stderr.write(json ? JSON.stringify({ error: { code, message } }) + '\n' : `Error: ${message}\n`)
    status = exitCode
  }
  const run = async (action: (out: Output) => Promise<void>) => {
    json = program.opts<{ json?: boolean }>().json === true
    try {
      await action(output(json))
    } catch (error) {
      const known = describeError(error)
      fail(known.code, known.message, known.exitCode)
    }
  }
  // Commander's own errors are written as usual; with --json they become JSON (below) instead.
  const program = buildProgram(operator, run, (text) => { if (!json) process.stderr.write(text) })
  try {
    await program.parseAsync(argv, { from: 'user' })
    if (status === EXIT_OK && typeof process.exitCode === 'number') status = process.exitCode
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here too, with status 0.
      if (error.exitCode === 0) status = EXIT_OK
      // A command group without its subcommand: commander has printed the group's help to stderr.
      else if (error.code === 'commander.help') status = EXIT_USAGE
      // Commander has written its message (with a hint) unless --json silenced it.
      else if (json) fail(error.code, error.message.replace(/^error: /, ''), EXIT_USAGE)
      else status = EXIT_USAGE
    } else {
      const known = describeError(error)
      fail(known.code, known.message, known.exitCode)
    }
  } finally {
    await operator.close().catch(() => {})
  }
  return status
}

/** The domain's errors carry the contract's codes and HTTP status: a 400 is bad input (usage), the rest failures. */
function describeError (error: unknown): { code: string, message: string, exitCode: number } {
  if (error instanceof CliError) return { code: error.code, message: error.message, exitCode: error.exitCode }
  if (error instanceof ConfigError) return { code: 'CONFIG_ERROR', message: error.message, exitCode: EXIT_FAILED }
  const { code, statusCode, message } = error as { code?: unknown, statusCode?: unknown, message?: unknown }
  if (typeof code === 'string' && typeof statusCode === 'number') {
    return { code, message: String(message), exitCode: statusCode === 400 ? EXIT_USAGE : EXIT_FAILED }
  }
  // Anything else (the database unreachable, …): its message, no stack.
  return { code: 'FAILED', message: error instanceof Error ? error.message : String(error), exitCode: EXIT_FAILED }
}
