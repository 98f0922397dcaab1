-- A session is bound to the token version it started under; a session of an older version is dead.
-- (Added in place rather than by redefining the table, so other migrations' columns stay.)
-- AlterTable
ALTER TABLE "Session" ADD COLUMN "tokenVersion" INTEGER NOT NULL DEFAULT 0;

-- Sessions that exist already started under their user's current version (older ones were ended).
UPDATE "Session" SET "tokenVersion" = (SELECT "tokenVersion" FROM "User" WHERE "User"."id" = "Session"."userId");
