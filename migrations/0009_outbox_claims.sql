-- Several instances on one PostgreSQL (docs/cluster.md, "Outbox across instances").
-- A claim says which instance drains an ordering key, until when: one row per key
-- being drained, deleted when its drain ends; a claim whose holder died is free once
-- claimed_until (the database's clock, epoch seconds) has passed. Single-instance
-- bridges never write here.
CREATE TABLE outbox_claims (
    ordering_key  TEXT NOT NULL PRIMARY KEY,
    holder        TEXT NOT NULL,
    claimed_until DOUBLE PRECISION NOT NULL
);

-- The session ("<company>/<session>") a row to WhatsApp is sent from: only the
-- instance owning that session runs it. NULL for rows to frontends. Pending rows
-- written before this column take their ticket's session (their ordering key is
-- t<ticket>:whatsapp).
ALTER TABLE outbox ADD COLUMN session_key TEXT;
UPDATE outbox SET session_key = (
    SELECT s.company_id || '/' || s.name FROM tickets t JOIN sessions s ON s.id = t.session_id
    WHERE t.id = CAST(SUBSTR(outbox.ordering_key, 2, LENGTH(outbox.ordering_key) - 10) AS BIGINT)
)
WHERE destination = 'whatsapp' AND status = 'pending' AND ordering_key LIKE 't%:whatsapp';
