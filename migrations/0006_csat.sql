-- Satisfaction ratings (docs/tickets.md#satisfaction): when a close asked the customer
-- for a rating, csat_asked_at; the rating, 1 to 5, and when it came. One per ticket:
-- csat_score is only ever set while it is NULL.
ALTER TABLE tickets ADD COLUMN csat_asked_at DOUBLE PRECISION;
ALTER TABLE tickets ADD COLUMN csat_score INTEGER CHECK (csat_score BETWEEN 1 AND 5);
ALTER TABLE tickets ADD COLUMN csat_rated_at DOUBLE PRECISION;

-- !stats averages a company's ratings: index only the rated tickets.
CREATE INDEX tickets_rated ON tickets (session_id) WHERE csat_score IS NOT NULL;
