-- Events the bridge could not handle (a malformed Matrix event, a Slack payload of an
-- unexpected shape, …): set aside instead of retried for ever. Each is recorded once
-- per (source, event_id), reported once in the ops channel, and its source
-- acknowledged (docs/operations.md). company_id is NULL when the event's room or
-- channel belongs to no company; it has no foreign key so that recording never fails
-- for a company since removed from the config. excerpt is the raw event as ASCII
-- JSON, cut at 2 KB.
CREATE TABLE quarantined_events (
    id         {{id}},
    source     TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    company_id TEXT,
    reason     TEXT NOT NULL,
    excerpt    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (source, event_id)
);

CREATE INDEX quarantined_events_created ON quarantined_events (created_at);
