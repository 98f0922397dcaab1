// The PostgreSQL connection pool the app's Prisma client uses: node-postgres's pool, with its
// connection failures made recognizable. node-postgres reports a connection it could not open (a
// connect timeout, a server that hung up during the handshake) and a connection lost under a query
// as plain Errors with no code, which Prisma's adapter passes through as they are. Here they are
// recognized by where they happen — while acquiring a connection, or on a client whose connection
// is gone — and become a DatabaseConnectionLost, whose code the error handler knows (503).
import pg from 'pg'

export const CONNECTION_LOST = 'DATABASE_CONNECTION_LOST'

export class DatabaseConnectionLost extends Error {
  readonly code = CONNECTION_LOST
  constructor (cause: unknown) {
    super('The database connection could not be opened or was lost', { cause })
    this.name = 'DatabaseConnectionLost'
  }
}

/** Errors the server sent (with a SQLSTATE) and socket errors (with a syscall) are recognizable already. */
function isRecognizable (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { severity, syscall } = error as { severity?: unknown, syscall?: unknown }
  return typeof severity === 'string' || typeof syscall === 'string'
}

/** node-postgres's own state of a client whose connection has ended or failed (pg-pool reads the same fields). */
function connectionGone (client: pg.PoolClient): boolean {
  const state = client as unknown as { _ending?: boolean, _ended?: boolean, _queryable?: boolean }
  return state._ending === true || state._ended === true || state._queryable === false
}

const watched = new WeakSet<pg.PoolClient>()
/** Errors a client emitted for its connection (the pool's query hands them to its caller as they are). */
const connectionErrors = new WeakSet<object>()
type Callback = (error: Error | undefined, ...rest: unknown[]) => void

/** Makes a client's query failures that come from its lost connection DatabaseConnectionLost. */
function watch (client: pg.PoolClient): pg.PoolClient {
  if (watched.has(client)) return client
  watched.add(client)
  client.on('error', (error) => { connectionErrors.add(error) })
  const query = client.query.bind(client) as (...args: unknown[]) => unknown
  const translate = (error: Error): Error => !isRecognizable(error) && connectionGone(client) ? new DatabaseConnectionLost(error) : error
  client.query = function (...args: unknown[]) {
    const last = args.at(-1)
    if (typeof last === 'function') {
      args[args.length - 1] = (error: Error | undefined, ...rest: unknown[]) => (last as Callback)(error === undefined || error === null ? error : translate(error), ...rest)
      return query(...args)
    }
    const result = query(...args)
    if (result instanceof Promise) return result.catch((error: Error) => { throw translate(error) })
    return result
  } as typeof client.query
  return client
}

export class RecognizingPool extends pg.Pool {
  constructor (config?: pg.PoolConfig) {
    super(config)
    // pool.query passes on the error a client emitted for its lost connection, bypassing the client's query.
    const query = pg.Pool.prototype.query as (...args: unknown[]) => unknown
    const translate = (error: Error): Error => !isRecognizable(error) && connectionErrors.has(error) ? new DatabaseConnectionLost(error) : error
    this.query = ((...args: unknown[]) => {
      const last = args.at(-1)
      if (typeof last === 'function') {
        args[args.length - 1] = (error: Error | undefined, ...rest: unknown[]) => (last as Callback)(error === undefined || error === null ? error : translate(error), ...rest)
        return query.apply(this, args)
      }
      const result = query.apply(this, args)
      if (result instanceof Promise) return result.catch((error: Error) => { throw translate(error) })
      return result
    }) as typeof this.query
  }

  override connect (): Promise<pg.PoolClient>
  override connect (callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): void
  override connect (callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void): Promise<pg.PoolClient> | void {
    // Whatever kept a connection from being acquired (other than an answer from the server) is the database being unreachable.
    const translate = (error: Error): Error => isRecognizable(error) ? error : new DatabaseConnectionLost(error)
    if (callback !== undefined) {
      super.connect((error, client, done) => {
        if (error) callback(translate(error), undefined, done)
        else callback(undefined, watch(client!), done)
      })
      return
    }
    return super.connect().then(watch, (error: Error) => { throw translate(error) })
  }
}
