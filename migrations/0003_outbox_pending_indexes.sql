-- The outbox is read for its pending rows only; indexes over every row slowed that
-- down as delivered rows piled up (bench/README.md). Index just the pending ones.
DROP INDEX outbox_due;
DROP INDEX outbox_by_key;
CREATE INDEX outbox_pending_due ON outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX outbox_pending_by_key ON outbox (ordering_key, id) WHERE status = 'pending';
CREATE INDEX outbox_done_at ON outbox (updated_at) WHERE status = 'done';
