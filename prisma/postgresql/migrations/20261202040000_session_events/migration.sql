-- Session history (GET /auth/sessions/:id/events) and the rotation count. Additive only: new columns
-- with defaults or nullable, a new table and its indexes.
-- AlterTable
ALTER TABLE "Session" ADD COLUMN     "lastIp" TEXT,
ADD COLUMN     "lastUserAgent" TEXT,
ADD COLUMN     "refreshCount" INTEGER NOT NULL DEFAULT 0;

-- CreateTable
CREATE TABLE "SessionEvent" (
    "id" SERIAL NOT NULL,
    "sessionId" TEXT NOT NULL,
    "userId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "at" TIMESTAMP(3) NOT NULL,
    "ip" TEXT,
    "userAgent" TEXT,
    "reason" TEXT,

    CONSTRAINT "SessionEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "SessionEvent_sessionId_at_idx" ON "SessionEvent"("sessionId", "at");

-- CreateIndex
CREATE INDEX "SessionEvent_userId_idx" ON "SessionEvent"("userId");

-- CreateIndex
CREATE INDEX "SessionEvent_at_idx" ON "SessionEvent"("at");

-- AddForeignKey
ALTER TABLE "SessionEvent" ADD CONSTRAINT "SessionEvent_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

