-- Satisfaction ratings (docs/tickets.md#satisfaction): when a close asked the customer
-- for a rating, csat_asked_at; the rating, 1 to 5, and when it came. One per ticket:
-- csat_score is only ever set while it is NULL.
ALTER TABLE tickets ADD COLUMN csat_asked_at DOUBLE PRECISION;
ALTER TABLE tickets ADD COLUMN csat_score INTEGER CHECK (csat_score BETWEEN 1 AND 5);
ALTER TABLE tickets ADD COLUMN csat_rated_at DOUBLE PRECISION;

-- !stats averages a company's ratings: index only the rated tickets.
CREATE INDEX tickets_rated ON tickets (session_id) WHERE csat_score IS NOT NULL;

-- Idle tickets (docs/tickets.md#idle-tickets). last_customer_at: when the customer
-- last wrote, or the ticket became active (created, reopened); a ticket silent since
-- sessions[].auto_close_hours is closed by the periodic sweep. Existing tickets take
-- their latest customer message, else their creation.
ALTER TABLE tickets ADD COLUMN last_customer_at DOUBLE PRECISION;
UPDATE tickets SET last_customer_at = COALESCE(
    (SELECT MAX(m.timestamp) FROM messages m WHERE m.ticket_id = tickets.id AND m.direction = 'in'),
    created_at
);
CREATE INDEX tickets_active_by_customer_silence ON tickets (last_customer_at)
    WHERE status <> 'closed';

-- ops.unanswered_alert_minutes: a pending ticket nobody answered is reported once
-- (unanswered_alerted_at), and once more when answered or closed (unanswered_resolved_at).
ALTER TABLE tickets ADD COLUMN unanswered_alerted_at DOUBLE PRECISION;
ALTER TABLE tickets ADD COLUMN unanswered_resolved_at DOUBLE PRECISION;
CREATE INDEX tickets_unanswered ON tickets (created_at)
    WHERE status = 'pending' AND first_response_at IS NULL AND unanswered_alerted_at IS NULL;
CREATE INDEX tickets_unanswered_alerted ON tickets (id)
    WHERE unanswered_alerted_at IS NOT NULL AND unanswered_resolved_at IS NULL;
