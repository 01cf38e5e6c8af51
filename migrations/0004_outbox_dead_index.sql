-- Dead letters are counted every few seconds (the backlog report, /health): without
-- an index of their own that count read the whole outbox, and on SQLite, where
-- statements run on the event loop's thread, it held the loop for ~100 ms at a
-- million rows (bench/README.md, "Scale").
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
