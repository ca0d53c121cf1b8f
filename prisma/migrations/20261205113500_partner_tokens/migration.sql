-- Partner tokens: an admin-API token with the partner role names the partner it acts for
ALTER TABLE "AdminToken" ADD COLUMN "partner" TEXT;
