-- API keys sealed with the master key (null: imported as a hash only)
ALTER TABLE "ApiKey" ADD COLUMN "sealedKey" TEXT;
