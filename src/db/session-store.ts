// The session store's raw SQL, in one place behind typed functions: a login's session start (the
// guard on the user's row, the session, its first token and its `login` event in one go), the
// refresh path's read (the presented token with its session, user and successor in one query), the
// family's current token, the rotation, and the once-only `expired` history event. Everything else the session domain
// writes goes through Prisma's generated queries. Each function here is tested on both providers
// (test/db/session-store.test.ts); rows come back converted (times as epoch ms, counts as numbers),
// so no caller sees what a driver returns.
//
// Prisma's TypedSQL (prisma/sql/*.sql with `prisma generate --sql`) would type these at generate
// time, but it needs Prisma's schema engine and a live database: the engine cannot be downloaded
// here, so the types are written by hand and the tests hold them to the schema.
import { type Db, type DbTransaction, providerOf } from './client.js'

/** A refresh token as the refresh path judges it, with its session, user and direct successor. */
export interface PresentedTokenRecord {
  id: string
  retiredAt: number | null
  expiresAt: number
  successorSealed: string | null
  client: string
  session: {
    id: string
    revokedAt: number | null
    revokedReason: string | null
    expiresAt: number
    tokenVersion: number
    refreshCount: number
    /** The client that last used the session: the login's, then the last refresh from another client's. */
    lastIp: string | null
    lastUserAgent: string | null
    /** The RFC 7638 thumbprint of the DPoP key the session is bound to, or null when it is not bound. */
    dpopJkt: string | null
  }
  user: { id: string, username: string, tokenVersion: number, disabled: boolean }
  successor: { id: string, retiredAt: number | null, expiresAt: number } | null
}

/** A session's one unretired token, and the seal of it its predecessor holds (grace replays). */
export interface CurrentTokenRecord { expiresAt: number, parentId: string, sealed: string | null }

/** What starting a session writes, and the user's row as it must still be for it to be written. */
export interface SessionStart {
  userId: string
  /** The user's token version the session is bound to: the user's row must still carry it. */
  tokenVersion: number
  /** The hash a login checked the password against: the row must still carry it (null: not checked). */
  passwordHash: string | null
  sessionId: string
  client: string
  ip: string | null
  userAgent: string | null
  dpopJkt: string | null
  at: Date
  expiresAt: Date
  tokenId: string
  tokenHash: string
  tokenExpiresAt: Date
}

/** What one rotation writes. */
export interface Rotation {
  tokenId: string
  sessionId: string
  userId: string
  /** The session's refreshCount as the caller read it: the rotation happens only if it still holds. */
  refreshCount: number
  successorId: string
  successorHash: string
  successorExpiresAt: Date
  /** The successor sealed for grace replays (with its expiry), or null when there is no grace. */
  sealed: string | null
  sealExpiresAt: Date | null
  at: Date
  /** Set when the presenting client differs from the session's last: recorded and written as the last. */
  newClient: { ip: string | null, userAgent: string | null } | null
}

type RawTime = Date | string | number | null
/** Raw rows carry times as the driver returns them (Date, ISO text or epoch ms): milliseconds or null. */
function timeOf (value: RawTime): number | null {
  return value === null ? null : new Date(value).getTime()
}

interface RawPresentedToken {
  id: string
  retiredAt: RawTime
  expiresAt: RawTime
  successorSealed: string | null
  sessionId: string
  client: string
  sessionRevokedAt: RawTime
  sessionRevokedReason: string | null
  sessionExpiresAt: RawTime
  sessionTokenVersion: number | bigint
  refreshCount: number | bigint
  lastIp: string | null
  lastUserAgent: string | null
  sessionDpopJkt: string | null
  userId: string
  username: string
  tokenVersion: number | bigint
  disabled: boolean | number
  successorId: string | null
  successorRetiredAt: RawTime
  successorExpiresAt: RawTime
}

export class SessionStore {
  private readonly provider: 'sqlite' | 'postgresql'

  constructor (private readonly db: Db) {
    this.provider = providerOf(db)
  }

  /** The token with this hash, with everything judging it needs, in one query; null when unknown. */
  async findPresentedToken (tokenHash: string): Promise<PresentedTokenRecord | null> {
    const rows = await this.db.$queryRaw<RawPresentedToken[]>`
      SELECT t."id", t."retiredAt", t."expiresAt", t."successorSealed",
             s."id" AS "sessionId", s."client", s."revokedAt" AS "sessionRevokedAt", s."revokedReason" AS "sessionRevokedReason", s."expiresAt" AS "sessionExpiresAt",
             s."tokenVersion" AS "sessionTokenVersion",
             s."refreshCount", s."lastIp", s."lastUserAgent", s."dpopJkt" AS "sessionDpopJkt",
             u."id" AS "userId", u."username", u."tokenVersion", u."disabled",
             n."id" AS "successorId", n."retiredAt" AS "successorRetiredAt", n."expiresAt" AS "successorExpiresAt"
      FROM "RefreshToken" t
      JOIN "Session" s ON s."id" = t."sessionId"
      JOIN "User" u ON u."id" = s."userId"
      LEFT JOIN "RefreshToken" n ON n."id" = t."successorId"
      WHERE t."tokenHash" = ${tokenHash}`
    const row = rows[0]
    if (row === undefined) return null
    return {
      id: row.id,
      retiredAt: timeOf(row.retiredAt),
      expiresAt: timeOf(row.expiresAt)!,
      successorSealed: row.successorSealed,
      client: row.client,
      session: {
        id: row.sessionId,
        revokedAt: timeOf(row.sessionRevokedAt),
        revokedReason: row.sessionRevokedReason,
        expiresAt: timeOf(row.sessionExpiresAt)!,
        tokenVersion: Number(row.sessionTokenVersion),
        refreshCount: Number(row.refreshCount),
        lastIp: row.lastIp,
        lastUserAgent: row.lastUserAgent,
        dpopJkt: row.sessionDpopJkt
      },
      user: { id: row.userId, username: row.username, tokenVersion: Number(row.tokenVersion), disabled: Boolean(row.disabled) },
      successor: row.successorId === null ? null : { id: row.successorId, retiredAt: timeOf(row.successorRetiredAt), expiresAt: timeOf(row.successorExpiresAt)! }
    }
  }

  /** The session's current token (its one unretired token with a predecessor); null when it has none or several. */
  async findCurrentToken (sessionId: string): Promise<CurrentTokenRecord | null> {
    const rows = await this.db.$queryRaw<Array<{ expiresAt: RawTime, parentId: string, successorSealed: string | null }>>`
      SELECT c."expiresAt", p."id" AS "parentId", p."successorSealed"
      FROM "RefreshToken" c
      JOIN "RefreshToken" p ON p."id" = c."parentId" AND p."successorId" = c."id"
      WHERE c."sessionId" = ${sessionId} AND c."retiredAt" IS NULL`
    const row = rows.length === 1 ? rows[0]! : undefined
    if (row === undefined) return null
    return { expiresAt: timeOf(row.expiresAt)!, parentId: row.parentId, sealed: row.successorSealed }
  }

  /**
   * Writes a session, its first refresh token and its `login` event, all or nothing, only while the
   * user's row still holds `tokenVersion` (and `passwordHash`, when given) and the user is enabled.
   * The row is locked as an update of it would lock it (the lock a password change, logout-everywhere
   * or disabling needs), so such a change either committed first, and nothing is written, or waits
   * for this one and then ends the new session too. Returns whether the session was written.
   * `tx`: run inside that transaction (a password change starts its new session in its own).
   */
  async startSession (start: SessionStart, tx?: DbTransaction): Promise<boolean> {
    return this.provider === 'postgresql' ? this.startSessionInOneStatement(start, tx ?? this.db) : this.startSessionInBatch(start, tx)
  }

  /**
   * PostgreSQL: one statement, the inserts chained on the guard's RETURNING. FOR NO KEY UPDATE is
   * the lock an UPDATE of the row takes: under READ COMMITTED a concurrent change holding the row
   * makes the guard wait and then recheck its conditions on the committed row.
   */
  private async startSessionInOneStatement (s: SessionStart, on: Db | DbTransaction): Promise<boolean> {
    const rows = await on.$queryRaw<Array<{ started: number | bigint }>>`
      WITH bound AS (
        SELECT "id" FROM "User"
        WHERE "id" = ${s.userId} AND "tokenVersion" = ${s.tokenVersion} AND NOT "disabled"
          AND (${s.passwordHash}::text IS NULL OR "passwordHash" = ${s.passwordHash}::text)
        FOR NO KEY UPDATE
      ), started AS (
        INSERT INTO "Session" ("id", "userId", "client", "userAgent", "ip", "lastUserAgent", "lastIp", "createdAt", "lastUsedAt", "expiresAt", "tokenVersion", "dpopJkt")
        SELECT ${s.sessionId}, "id", ${s.client}, ${s.userAgent}::text, ${s.ip}::text, ${s.userAgent}::text, ${s.ip}::text, ${s.at}, ${s.at}, ${s.expiresAt}, ${s.tokenVersion}, ${s.dpopJkt}::text
        FROM bound
        RETURNING "id"
      ), token AS (
        INSERT INTO "RefreshToken" ("id", "sessionId", "tokenHash", "createdAt", "expiresAt")
        SELECT ${s.tokenId}, "id", ${s.tokenHash}, ${s.at}, ${s.tokenExpiresAt}
        FROM started
        RETURNING "id"
      ), recorded AS (
        INSERT INTO "SessionEvent" ("sessionId", "userId", "type", "at", "ip", "userAgent")
        SELECT ${s.sessionId}, ${s.userId}, 'login', ${s.at}, ${s.ip}::text, ${s.userAgent}::text
        FROM token
      )
      SELECT count(*)::int AS "started" FROM token`
    return Number(rows[0]?.started ?? 0) === 1
  }

  /**
   * SQLite: three statements, batched in one transaction of their own (or run in order inside the
   * caller's). The first, the conditional insert of the session, takes the database's write lock, so
   * a concurrent change of the user's row either committed before it (and the guard finds the row
   * changed) or waits for this transaction; the later ones need only know the session was written.
   */
  private async startSessionInBatch (s: SessionStart, tx: DbTransaction | undefined): Promise<boolean> {
    const on = tx ?? this.db
    const statements = [
      on.$executeRaw`
        INSERT INTO "Session" ("id", "userId", "client", "userAgent", "ip", "lastUserAgent", "lastIp", "createdAt", "lastUsedAt", "expiresAt", "tokenVersion", "dpopJkt")
        SELECT ${s.sessionId}, "id", ${s.client}, ${s.userAgent}, ${s.ip}, ${s.userAgent}, ${s.ip}, ${s.at}, ${s.at}, ${s.expiresAt}, ${s.tokenVersion}, ${s.dpopJkt}
        FROM "User"
        WHERE "id" = ${s.userId} AND "tokenVersion" = ${s.tokenVersion} AND NOT "disabled"
          AND (${s.passwordHash} IS NULL OR "passwordHash" = ${s.passwordHash})`,
      on.$executeRaw`
        INSERT INTO "RefreshToken" ("id", "sessionId", "tokenHash", "createdAt", "expiresAt")
        SELECT ${s.tokenId}, ${s.sessionId}, ${s.tokenHash}, ${s.at}, ${s.tokenExpiresAt}
        WHERE EXISTS (SELECT 1 FROM "Session" WHERE "id" = ${s.sessionId})`,
      on.$executeRaw`
        INSERT INTO "SessionEvent" ("sessionId", "userId", "type", "at", "ip", "userAgent")
        SELECT ${s.sessionId}, ${s.userId}, 'login', ${s.at}, ${s.ip}, ${s.userAgent}
        WHERE EXISTS (SELECT 1 FROM "Session" WHERE "id" = ${s.sessionId})`
    ]
    // Inside a transaction already: the same statements in order (a Prisma query runs when awaited).
    let written: number[]
    if (tx === undefined) written = await this.db.$transaction(statements)
    else {
      written = []
      for (const statement of statements) written.push(await statement)
    }
    return written[0] === 1
  }

  /**
   * Retires the presented token and stores its successor; counts the rotation on the session (and,
   * for a new client, records it as the session's last and writes its `refresh-new-client` event),
   * all or nothing. Every write is conditional, which is the guard against a concurrent refresh of
   * the same token or a concurrent revocation of the session: the session update requires the
   * session live, not outdated (its token version not below the user's), its refreshCount still the
   * one the caller read (a concurrent rotation that committed first has moved it) and the token
   * unretired; the token is retired, and the successor and the event written, only if that
   * happened. The session row is locked first, in the same order as revocation, so the two cannot
   * deadlock. Returns false when another change won (then nothing of the successor exists).
   */
  async rotate (rotation: Rotation): Promise<boolean> {
    return this.provider === 'postgresql' ? this.rotateInOneStatement(rotation) : this.rotateInBatch(rotation)
  }

  /**
   * PostgreSQL: one statement of data-modifying CTEs, each step conditional on the previous one's
   * RETURNING: atomic without a transaction of its own, one round trip. Under READ COMMITTED a
   * concurrent rotation or revocation holding the session row makes the first UPDATE wait and then
   * recheck its conditions on the committed row (the count, revokedAt), so the loser writes nothing.
   */
  private async rotateInOneStatement (r: Rotation): Promise<boolean> {
    const changed = r.newClient !== null
    const rows = await this.db.$queryRaw<Array<{ rotated: number | bigint }>>`
      WITH counted AS (
        UPDATE "Session" SET "lastUsedAt" = ${r.at}, "refreshCount" = "refreshCount" + 1,
               "lastIp" = CASE WHEN ${changed} THEN ${r.newClient?.ip ?? null}::text ELSE "lastIp" END,
               "lastUserAgent" = CASE WHEN ${changed} THEN ${r.newClient?.userAgent ?? null}::text ELSE "lastUserAgent" END
        WHERE "id" = ${r.sessionId} AND "revokedAt" IS NULL AND "refreshCount" = ${r.refreshCount}
          AND "tokenVersion" >= (SELECT u."tokenVersion" FROM "User" u WHERE u."id" = "Session"."userId")
          AND EXISTS (SELECT 1 FROM "RefreshToken" WHERE "id" = ${r.tokenId} AND "retiredAt" IS NULL)
        RETURNING "id"
      ), retired AS (
        UPDATE "RefreshToken" SET "retiredAt" = ${r.at}, "successorId" = ${r.successorId},
               "successorSealed" = ${r.sealed}, "sealExpiresAt" = ${r.sealExpiresAt}
        WHERE "id" = ${r.tokenId} AND "retiredAt" IS NULL AND EXISTS (SELECT 1 FROM counted)
        RETURNING "id"
      ), successor AS (
        INSERT INTO "RefreshToken" ("id", "sessionId", "tokenHash", "parentId", "createdAt", "expiresAt")
        SELECT ${r.successorId}, ${r.sessionId}, ${r.successorHash}, ${r.tokenId}, ${r.at}, ${r.successorExpiresAt}
        FROM retired
        RETURNING "id"
      ), recorded AS (
        INSERT INTO "SessionEvent" ("sessionId", "userId", "type", "at", "ip", "userAgent")
        SELECT ${r.sessionId}, ${r.userId}, 'refresh-new-client', ${r.at}, ${r.newClient?.ip ?? null}::text, ${r.newClient?.userAgent ?? null}::text
        FROM successor WHERE ${changed}
      )
      SELECT count(*)::int AS "rotated" FROM successor`
    return Number(rows[0]?.rotated ?? 0) === 1
  }

  /**
   * SQLite (no writes inside CTEs): one batched transaction of three statements (four with the
   * event). The app's connection runs one transaction at a time and the first statement takes the
   * database's write lock, so each later one need only know that the one before wrote: the token is
   * retired only in the session as counted by this rotation (a concurrent winner that moved the count
   * has retired the token already), the successor only if the token names it.
   */
  private async rotateInBatch (r: Rotation): Promise<boolean> {
    const statements = [
      r.newClient === null
        ? this.db.$executeRaw`
          UPDATE "Session" SET "lastUsedAt" = ${r.at}, "refreshCount" = "refreshCount" + 1
          WHERE "id" = ${r.sessionId} AND "revokedAt" IS NULL AND "refreshCount" = ${r.refreshCount}
            AND "tokenVersion" >= (SELECT u."tokenVersion" FROM "User" u WHERE u."id" = "Session"."userId")
          AND EXISTS (SELECT 1 FROM "RefreshToken" WHERE "id" = ${r.tokenId} AND "retiredAt" IS NULL)`
        : this.db.$executeRaw`
          UPDATE "Session" SET "lastUsedAt" = ${r.at}, "refreshCount" = "refreshCount" + 1, "lastIp" = ${r.newClient.ip}, "lastUserAgent" = ${r.newClient.userAgent}
          WHERE "id" = ${r.sessionId} AND "revokedAt" IS NULL AND "refreshCount" = ${r.refreshCount}
            AND "tokenVersion" >= (SELECT u."tokenVersion" FROM "User" u WHERE u."id" = "Session"."userId")
          AND EXISTS (SELECT 1 FROM "RefreshToken" WHERE "id" = ${r.tokenId} AND "retiredAt" IS NULL)`,
      this.db.$executeRaw`
        UPDATE "RefreshToken" SET "retiredAt" = ${r.at}, "successorId" = ${r.successorId},
               "successorSealed" = ${r.sealed}, "sealExpiresAt" = ${r.sealExpiresAt}
        WHERE "id" = ${r.tokenId} AND "retiredAt" IS NULL
          AND EXISTS (SELECT 1 FROM "Session" WHERE "id" = ${r.sessionId} AND "revokedAt" IS NULL AND "refreshCount" = ${r.refreshCount + 1})`,
      this.db.$executeRaw`
        INSERT INTO "RefreshToken" ("id", "sessionId", "tokenHash", "parentId", "createdAt", "expiresAt")
        SELECT ${r.successorId}, ${r.sessionId}, ${r.successorHash}, ${r.tokenId}, ${r.at}, ${r.successorExpiresAt}
        WHERE EXISTS (SELECT 1 FROM "RefreshToken" WHERE "id" = ${r.tokenId} AND "successorId" = ${r.successorId})`
    ]
    if (r.newClient !== null) {
      statements.push(this.db.$executeRaw`
        INSERT INTO "SessionEvent" ("sessionId", "userId", "type", "at", "ip", "userAgent")
        SELECT ${r.sessionId}, ${r.userId}, 'refresh-new-client', ${r.at}, ${r.newClient.ip}, ${r.newClient.userAgent}
        WHERE EXISTS (SELECT 1 FROM "RefreshToken" WHERE "id" = ${r.successorId})`)
    }
    const [counted, retired, inserted] = await this.db.$transaction(statements)
    return counted === 1 && retired === 1 && inserted === 1
  }

  /** Writes the session's `expired` event at `at` unless it has one; true when this call wrote it. */
  async recordExpiry (sessionId: string, userId: string, at: Date): Promise<boolean> {
    const written = await this.db.$executeRaw`
      INSERT INTO "SessionEvent" ("sessionId", "userId", "type", "at")
      SELECT ${sessionId}, ${userId}, 'expired', ${at}
      WHERE NOT EXISTS (SELECT 1 FROM "SessionEvent" WHERE "sessionId" = ${sessionId} AND "type" = 'expired')`
    return written === 1
  }
}
