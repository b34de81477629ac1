ALTER TABLE "alerts" ADD COLUMN "summary" text;--> statement-breakpoint
CREATE INDEX "alerts_triggered_idx" ON "alerts" USING btree ("triggered_at");