-- RefreshToken.retiredReason was written ("rotated", the only way a token is retired) and never read:
-- a retired token is told apart by its successor and its session's revokedAt. Dropped.
-- AlterTable
ALTER TABLE "RefreshToken" DROP COLUMN "retiredReason";

