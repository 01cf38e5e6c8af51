-- zapbridge initial schema, portable between SQLite and PostgreSQL.
-- Markers (see bridge/db/migrate.py): {{id}} is an auto-increment integer primary key.
-- Timestamps are epoch seconds (DOUBLE PRECISION); JSON is TEXT.

-- Tenants, from the config file.
CREATE TABLE companies (
    id   TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL
);

-- WhatsApp sessions (phone numbers). status holds the contract words (CONNECTED, …).
CREATE TABLE sessions (
    id                {{id}},
    company_id        TEXT NOT NULL REFERENCES companies (id),
    name              TEXT NOT NULL,
    engine            TEXT NOT NULL,
    status            TEXT NOT NULL DEFAULT 'LOGGED_OUT',
    phone             TEXT,
    last_connected_at DOUBLE PRECISION,
    last_error        TEXT,
    last_error_at     DOUBLE PRECISION,
    updated_at        DOUBLE PRECISION NOT NULL,
    UNIQUE (company_id, name)
);

-- Customers of a session: a person (E.164 phone and/or WhatsApp LID) or a group chat.
CREATE TABLE contacts (
    id         {{id}},
    session_id BIGINT NOT NULL REFERENCES sessions (id),
    phone      TEXT,
    lid        TEXT,
    push_name  TEXT,
    is_group   BOOLEAN NOT NULL DEFAULT FALSE,
    group_jid  TEXT,
    group_name TEXT,
    avatar_url TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    CHECK (phone IS NOT NULL OR lid IS NOT NULL OR group_jid IS NOT NULL),
    UNIQUE (session_id, phone),
    UNIQUE (session_id, lid),
    UNIQUE (session_id, group_jid)
);

-- One conversation between a contact and a session.
CREATE TABLE tickets (
    id                   {{id}},
    session_id           BIGINT NOT NULL REFERENCES sessions (id),
    contact_id           BIGINT NOT NULL REFERENCES contacts (id),
    status               TEXT NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'open', 'closed')),
    assignee             TEXT,
    queue                TEXT,
    created_at           DOUBLE PRECISION NOT NULL,
    first_response_at    DOUBLE PRECISION,
    closed_at            DOUBLE PRECISION,
    updated_at           DOUBLE PRECISION NOT NULL,
    greeted_at           DOUBLE PRECISION,
    out_of_hours_sent_at DOUBLE PRECISION
);

-- At most one non-closed ticket per (session, contact), whatever the concurrency.
CREATE UNIQUE INDEX tickets_one_active ON tickets (session_id, contact_id)
    WHERE status <> 'closed';
CREATE INDEX tickets_by_session_status ON tickets (session_id, status);
CREATE INDEX tickets_by_contact ON tickets (contact_id, id);

-- Rooms and channels the bridge uses: a control room per session, an ops room per company.
CREATE TABLE rooms (
    id         {{id}},
    frontend   TEXT NOT NULL,
    kind       TEXT NOT NULL CHECK (kind IN ('control', 'ops')),
    company_id TEXT NOT NULL REFERENCES companies (id),
    session_id BIGINT REFERENCES sessions (id),
    room_id    TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);

-- NULLs are distinct in unique indexes, so session rooms and company rooms get one each.
CREATE UNIQUE INDEX rooms_per_session ON rooms (frontend, kind, company_id, session_id)
    WHERE session_id IS NOT NULL;
CREATE UNIQUE INDEX rooms_per_company ON rooms (frontend, kind, company_id)
    WHERE session_id IS NULL;
CREATE INDEX rooms_by_room_id ON rooms (frontend, room_id);

-- Where a ticket's thread lives on each frontend.
CREATE TABLE thread_refs (
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    frontend    TEXT NOT NULL,
    room_id     TEXT NOT NULL,
    thread_root TEXT NOT NULL,
    PRIMARY KEY (ticket_id, frontend)
);

-- Slack thread roots (ts) are unique per channel only, hence room_id in the key.
CREATE UNIQUE INDEX thread_refs_by_root ON thread_refs (frontend, room_id, thread_root);

-- Messages of a ticket, both directions. content is the neutral message as JSON.
CREATE TABLE messages (
    id          {{id}},
    ticket_id   BIGINT NOT NULL REFERENCES tickets (id),
    session_id  BIGINT NOT NULL REFERENCES sessions (id),
    direction   TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    kind        TEXT NOT NULL,
    wa_id       TEXT,
    sender      TEXT NOT NULL,
    content     TEXT NOT NULL,
    quote_wa_id TEXT,
    timestamp   DOUBLE PRECISION NOT NULL,
    ack         TEXT CHECK (ack IN ('sent', 'delivered', 'read', 'failed')),
    created_at  DOUBLE PRECISION NOT NULL,
    UNIQUE (session_id, wa_id)
);

CREATE INDEX messages_by_ticket ON messages (ticket_id, id);

-- A message's ids on each frontend. part numbers the events of one message
-- (a contact card is a text and a .vcf file); part 0 is the main one.
CREATE TABLE message_refs (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    frontend   TEXT NOT NULL,
    part       INTEGER NOT NULL DEFAULT 0,
    room_id    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    PRIMARY KEY (message_id, frontend, part)
);

-- Slack message ts are unique per channel only, hence room_id in the key.
CREATE UNIQUE INDEX message_refs_by_event ON message_refs (frontend, room_id, event_id);

-- Deliveries to frontends and engines, in order per ordering_key, retried with backoff.
CREATE TABLE outbox (
    id              {{id}},
    destination     TEXT NOT NULL,
    ordering_key    TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'done', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error      TEXT,
    created_at      DOUBLE PRECISION NOT NULL,
    updated_at      DOUBLE PRECISION NOT NULL
);

CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_by_key ON outbox (ordering_key, id);

-- Inbound events already handled (appservice txn ids, Slack event ids, …).
CREATE TABLE processed_events (
    source       TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    processed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE INDEX processed_events_by_time ON processed_events (processed_at);
