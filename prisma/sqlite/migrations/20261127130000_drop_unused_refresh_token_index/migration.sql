-- No query looks refresh tokens up by expiry; each rotation paid for this index all the same.
-- DropIndex
DROP INDEX "RefreshToken_expiresAt_idx";
