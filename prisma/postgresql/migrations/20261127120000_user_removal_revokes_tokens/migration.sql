-- Access tokens of a user who is deleted or disabled in the database (by an operator: the API has no
-- such endpoint) stop being accepted: each change writes a revocation event, which every instance
-- reads from the log within REVOCATION_POLL_INTERVAL_MS. Triggers, so that no way of making the
-- change can skip the event. relevantUntil is the longest access-token lifetime the configuration
-- allows (ten years); each instance keeps the event only as long as its ACCESS_TOKEN_TTL needs.
-- Timestamps are UTC, as Prisma stores them; search_path is pinned to this schema.

-- Deleted: no token version of this user is accepted any more.
CREATE FUNCTION "revoke_tokens_of_deleted_user"() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO "RevocationEvent" ("kind", "subject", "tokenVersion", "createdAt", "relevantUntil")
    VALUES ('user', OLD."id", 2147483647, now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') + interval '3650 days');
    RETURN OLD;
END $$;

CREATE TRIGGER "User_deleted_revokes_tokens" AFTER DELETE ON "User"
FOR EACH ROW EXECUTE FUNCTION "revoke_tokens_of_deleted_user"();

-- Disabled: the token version is raised, as a password change does, so that re-enabling the user
-- later lets new logins work while every older token stays refused.
CREATE FUNCTION "revoke_tokens_of_disabled_user"() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE "User" SET "tokenVersion" = "tokenVersion" + 1 WHERE "id" = NEW."id";
    INSERT INTO "RevocationEvent" ("kind", "subject", "tokenVersion", "createdAt", "relevantUntil")
    VALUES ('user', NEW."id", NEW."tokenVersion" + 1, now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') + interval '3650 days');
    RETURN NULL;
END $$;

CREATE TRIGGER "User_disabled_revokes_tokens" AFTER UPDATE OF "disabled" ON "User"
FOR EACH ROW WHEN (NEW."disabled" AND NOT OLD."disabled") EXECUTE FUNCTION "revoke_tokens_of_disabled_user"();
