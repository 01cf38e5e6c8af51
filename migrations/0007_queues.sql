-- Queues (docs/tickets.md#queues). A new ticket of a session with queues is sent the
-- menu (menu_sent_at); until its customer picks a queue, menu_deadline holds when it
-- goes to the default queue anyway, and menu_invalid counts the answers that named
-- no option. Routing sets tickets.queue and clears menu_deadline, in one statement
-- that only the first router wins. The timer is a column: a restart resumes it.
ALTER TABLE tickets ADD COLUMN menu_sent_at DOUBLE PRECISION;
ALTER TABLE tickets ADD COLUMN menu_deadline DOUBLE PRECISION;
ALTER TABLE tickets ADD COLUMN menu_invalid INTEGER NOT NULL DEFAULT 0;

-- The menu sweep reads the earliest deadlines of the tickets still choosing.
CREATE INDEX tickets_menu_deadline ON tickets (menu_deadline) WHERE menu_deadline IS NOT NULL;

-- !tickets and !stats filter by queue.
CREATE INDEX tickets_by_queue ON tickets (session_id, queue) WHERE queue IS NOT NULL;
