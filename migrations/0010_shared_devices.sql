-- Device state shared by every instance on one database (docs/cluster.md, "Device
-- stores"; docs/sim.md, "Shared network"), keyed by the session key
-- "<company>/<session>" so a session moves between instances without a new login.

-- The whatsmeow pairing record: which device JID (and our LID, once known) a session
-- is linked as. whatsmeow keeps the device itself in its own whatsmeow_* tables of the
-- same PostgreSQL database; on SQLite the record stays a file next to the store.
CREATE TABLE device_pairings (
    session_key TEXT PRIMARY KEY,
    engine      TEXT NOT NULL,
    jid         TEXT NOT NULL,
    lid         TEXT,
    paired_at   DOUBLE PRECISION NOT NULL
);

-- The simulated network (whatsapp.engine: sim, whatsapp.sim.network: database): each
-- session's linked device, ...
CREATE TABLE sim_devices (
    session_key TEXT PRIMARY KEY,
    phone       TEXT NOT NULL,
    paired_at   DOUBLE PRECISION NOT NULL,
    auto        BOOLEAN NOT NULL DEFAULT FALSE
);

-- ... what the bridge sent (the /sim outbound log, oldest first by seq; entry is the
-- wire-format JSON of docs/sim.md), ...
CREATE TABLE sim_outbound (
    seq         {{id}},
    session_key TEXT NOT NULL,
    wa_id       TEXT NOT NULL,
    entry       TEXT NOT NULL
);
CREATE INDEX sim_outbound_by_session ON sim_outbound (session_key, seq);

-- ... the LID <-> phone links it learned, ...
CREATE TABLE sim_lids (
    session_key TEXT NOT NULL,
    lid         TEXT NOT NULL,
    phone       TEXT NOT NULL,
    PRIMARY KEY (session_key, lid)
);

-- ... and the customer messages it holds for a device until the instance running the
-- session takes them (in seq order; a taken message is deleted). body is the /sim
-- inbound body as JSON, wa_id the id answered to the poster, posted_at its time.
CREATE TABLE sim_inbound (
    seq         {{id}},
    session_key TEXT NOT NULL,
    wa_id       TEXT NOT NULL,
    body        TEXT NOT NULL,
    posted_at   DOUBLE PRECISION NOT NULL
);
CREATE INDEX sim_inbound_by_session ON sim_inbound (session_key, seq);
