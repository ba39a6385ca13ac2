-- Baselines arrive as events (issue 14: `llmloop baseline set` publishes a
-- `baseline` event, which the processor stores like any other): the event id makes
-- a redelivered pin a duplicate the writer recognises. Rows pinned before keep the
-- zero id.
ALTER TABLE drift_baselines ADD COLUMN IF NOT EXISTS event_id UUID;
