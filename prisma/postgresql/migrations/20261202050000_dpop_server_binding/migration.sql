-- DPoP (RFC 9449): the thumbprint of the key a session is bound to; null for unbound sessions.
-- Additive only (a nullable column).
-- AlterTable
ALTER TABLE "Session" ADD COLUMN "dpopJkt" TEXT;
