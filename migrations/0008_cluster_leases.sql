-- Several instances on one PostgreSQL database (docs/cluster.md#ownership-and-fencing).
-- A lease: 'session:<company>/<session>' or 'leader', held by one instance until
-- expires_at (the database's clock, seconds since the epoch). token rises at every
-- acquisition and is checked before every WhatsApp send and status write, so a
-- holder whose lease ran out can do nothing more. A row is never deleted: the token
-- keeps rising across holders. previous_end says how the last holder let go:
-- 'expired' (it lost its lease) or 'released' (a clean handover).
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    token BIGINT NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    released_at DOUBLE PRECISION,
    previous_holder TEXT,
    previous_end TEXT CHECK (previous_end IN ('expired', 'released'))
);

-- The live instances: each beats every lease_seconds/3; a clean stop removes its row.
-- Sessions are spread by counting the instances whose heartbeat is recent.
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL
);
