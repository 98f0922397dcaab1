-- Session.lastIp/lastUserAgent now start as the login's client (written with the session), so that
-- null means "that client sent none". Sessions started before held null for "still the login's":
-- they get the login's client now (a refresh always has an address, so a null lastIp is such a row).
UPDATE "Session" SET "lastIp" = "ip", "lastUserAgent" = "userAgent" WHERE "lastIp" IS NULL;
