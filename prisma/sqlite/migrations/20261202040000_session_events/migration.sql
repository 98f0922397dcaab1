-- Session history (GET /auth/sessions/:id/events) and the rotation count. Additive only: new columns
-- with defaults or nullable, a new table and its indexes (no table redefinition).
-- AlterTable
ALTER TABLE "Session" ADD COLUMN "lastIp" TEXT;
ALTER TABLE "Session" ADD COLUMN "lastUserAgent" TEXT;
ALTER TABLE "Session" ADD COLUMN "refreshCount" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "SessionEvent" (
    "id" INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    "sessionId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "at" DATETIME NOT NULL,
    "ip" TEXT,
    "userAgent" TEXT,
    "reason" TEXT,
    CONSTRAINT "SessionEvent_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);

-- CreateIndex
CREATE INDEX "SessionEvent_sessionId_at_idx" ON "SessionEvent"("sessionId", "at");

-- CreateIndex
CREATE INDEX "SessionEvent_userId_idx" ON "SessionEvent"("userId");

-- CreateIndex
CREATE INDEX "SessionEvent_at_idx" ON "SessionEvent"("at");
