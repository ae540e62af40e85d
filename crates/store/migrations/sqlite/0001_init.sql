-- Telltale store, SQLite. Times are RFC 3339 text in UTC as sqlx writes them, which sorts
-- and compares in time order. JSON is text. No partitions: Store::maintain deletes old rows.

CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    vin           TEXT,
    first_seen    TEXT NOT NULL,
    last_seen     TEXT NOT NULL,
    online        INTEGER NOT NULL,
    presence_at   TEXT,
    agent_version TEXT
);

CREATE TABLE vehicles (
    vin            TEXT PRIMARY KEY,
    first_seen     TEXT NOT NULL,
    last_seen      TEXT NOT NULL,
    last_device_id TEXT NOT NULL,
    info           TEXT
);

CREATE TABLE messages (
    device_id   TEXT NOT NULL,
    boot_id     BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    device_time TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq)
) WITHOUT ROWID;
CREATE INDEX messages_received_at ON messages (received_at);

CREATE TABLE boot_seq (
    device_id  TEXT NOT NULL,
    boot_id    BLOB NOT NULL,
    max_seq    INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);

CREATE TABLE gaps (
    device_id     TEXT NOT NULL,
    boot_id       BLOB NOT NULL,
    first_missing INTEGER NOT NULL,
    last_missing  INTEGER NOT NULL,
    detected_at   TEXT NOT NULL,
    PRIMARY KEY (device_id, boot_id, first_missing),
    CHECK (first_missing <= last_missing)
);

CREATE TABLE telemetry (
    vin         TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    signal      TEXT NOT NULL,
    value       REAL NOT NULL,
    text        TEXT,
    unit        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    ecu         INTEGER NOT NULL,
    device_time TEXT NOT NULL,
    received_at TEXT NOT NULL,
    boot_id     BLOB NOT NULL,
    seq         INTEGER NOT NULL
);
CREATE INDEX telemetry_vin_signal_time ON telemetry (vin, signal, device_time);
CREATE INDEX telemetry_device_time ON telemetry (device_time);

CREATE TABLE dtc_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    vin          TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    ecu          INTEGER NOT NULL,
    code         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    change       TEXT NOT NULL CHECK (change IN ('appeared', 'cleared')),
    mil_on       INTEGER NOT NULL,
    device_time  TEXT NOT NULL,
    received_at  TEXT NOT NULL,
    freeze_frame TEXT,
    context      TEXT NOT NULL
);
CREATE INDEX dtc_events_vin_time ON dtc_events (vin, device_time);

CREATE TABLE dtc_state (
    vin        TEXT NOT NULL,
    ecu        INTEGER NOT NULL,
    code       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    active     INTEGER NOT NULL,
    since      TEXT NOT NULL,
    occurrence INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (vin, ecu, code, kind)
);

CREATE TABLE dead_letters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic       TEXT NOT NULL,
    payload     BLOB NOT NULL,
    reason      TEXT NOT NULL
);

CREATE TABLE lead_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    vin             TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    ecu             INTEGER NOT NULL,
    code            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    occurrence      INTEGER NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX lead_outbox_due ON lead_outbox (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE command_results (
    device_id   TEXT NOT NULL,
    boot_id     BLOB NOT NULL,
    seq         INTEGER NOT NULL,
    command_id  TEXT NOT NULL,
    ok          INTEGER NOT NULL,
    error_code  INTEGER NOT NULL,
    error       TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq)
);
