-- RefreshToken.retiredReason was written ("rotated", the only way a token is retired) and never read:
-- a retired token is told apart by its successor and its session's revokedAt. Dropped.
-- RedefineTables
PRAGMA defer_foreign_keys=ON;
PRAGMA foreign_keys=OFF;
CREATE TABLE "new_RefreshToken" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "sessionId" TEXT NOT NULL,
    "tokenHash" TEXT NOT NULL,
    "parentId" TEXT,
    "createdAt" DATETIME NOT NULL,
    "expiresAt" DATETIME NOT NULL,
    "retiredAt" DATETIME,
    "successorId" TEXT,
    "successorSealed" TEXT,
    "sealExpiresAt" DATETIME,
    CONSTRAINT "RefreshToken_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "Session" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
INSERT INTO "new_RefreshToken" ("createdAt", "expiresAt", "id", "parentId", "retiredAt", "sealExpiresAt", "sessionId", "successorId", "successorSealed", "tokenHash") SELECT "createdAt", "expiresAt", "id", "parentId", "retiredAt", "sealExpiresAt", "sessionId", "successorId", "successorSealed", "tokenHash" FROM "RefreshToken";
DROP TABLE "RefreshToken";
ALTER TABLE "new_RefreshToken" RENAME TO "RefreshToken";
CREATE UNIQUE INDEX "RefreshToken_tokenHash_key" ON "RefreshToken"("tokenHash");
CREATE INDEX "RefreshToken_sessionId_idx" ON "RefreshToken"("sessionId");
CREATE INDEX "RefreshToken_retiredAt_idx" ON "RefreshToken"("retiredAt");
CREATE INDEX "RefreshToken_sealExpiresAt_idx" ON "RefreshToken"("sealExpiresAt");
PRAGMA foreign_keys=ON;
PRAGMA defer_foreign_keys=OFF;

