-- Telltale store, PostgreSQL: everything but the telemetry table (0002 picks its shape).
-- Times are timestamptz (UTC); device times sit beside the cloud's receive times.

CREATE TABLE devices (
    device_id     TEXT PRIMARY KEY,
    vin           TEXT,
    first_seen    TIMESTAMPTZ NOT NULL,
    last_seen     TIMESTAMPTZ NOT NULL,
    online        BOOLEAN NOT NULL,
    -- Receive time of the status message that set `online`; NULL until one came.
    presence_at   TIMESTAMPTZ,
    agent_version TEXT
);

CREATE TABLE vehicles (
    vin            TEXT PRIMARY KEY,
    first_seen     TIMESTAMPTZ NOT NULL,
    last_seen      TIMESTAMPTZ NOT NULL,
    last_device_id TEXT NOT NULL,
    info           JSONB
);

-- One row per stored uplink message: the dedupe key that makes ingest idempotent.
CREATE TABLE messages (
    device_id   TEXT NOT NULL,
    boot_id     BYTEA NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    device_time TIMESTAMPTZ NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq)
);
CREATE INDEX messages_received_at ON messages (received_at);

-- Highest seq stored per boot: the reference for gap detection.
CREATE TABLE boot_seq (
    device_id  TEXT NOT NULL,
    boot_id    BYTEA NOT NULL,
    max_seq    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, boot_id)
);

CREATE TABLE gaps (
    device_id     TEXT NOT NULL,
    boot_id       BYTEA NOT NULL,
    first_missing BIGINT NOT NULL,
    last_missing  BIGINT NOT NULL,
    detected_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, boot_id, first_missing),
    CHECK (first_missing <= last_missing)
);

CREATE TABLE dtc_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    vin          TEXT NOT NULL,
    device_id    TEXT NOT NULL,
    ecu          BIGINT NOT NULL,
    code         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    change       TEXT NOT NULL CHECK (change IN ('appeared', 'cleared')),
    mil_on       BOOLEAN NOT NULL,
    device_time  TIMESTAMPTZ NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    freeze_frame JSONB,
    -- Distance and warm-ups since cleared, odometer, distance with MIL on, report reason.
    context      JSONB NOT NULL
);
CREATE INDEX dtc_events_vin_time ON dtc_events (vin, device_time DESC);

-- Current DTCs per vehicle, ECU, code and kind. Rows stay when a code clears (active = false)
-- so `occurrence` counts appearances; ecu 0 / code 'MIL' / kind 'mil' is the vehicle's MIL.
CREATE TABLE dtc_state (
    vin        TEXT NOT NULL,
    ecu        BIGINT NOT NULL,
    code       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    since      TIMESTAMPTZ NOT NULL,
    occurrence BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (vin, ecu, code, kind)
);

CREATE TABLE dead_letters (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL,
    topic       TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    reason      TEXT NOT NULL
);
CREATE INDEX dead_letters_received_at ON dead_letters (received_at DESC);

CREATE TABLE lead_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    vin             TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    ecu             BIGINT NOT NULL,
    code            TEXT NOT NULL,
    reason          TEXT NOT NULL,
    occurrence      BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    sent_at         TIMESTAMPTZ,
    last_error      TEXT
);
CREATE INDEX lead_outbox_due ON lead_outbox (next_attempt_at) WHERE sent_at IS NULL;

CREATE TABLE command_results (
    device_id   TEXT NOT NULL,
    boot_id     BYTEA NOT NULL,
    seq         BIGINT NOT NULL,
    command_id  TEXT NOT NULL,
    ok          BOOLEAN NOT NULL,
    error_code  INTEGER NOT NULL,
    error       TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (device_id, boot_id, seq)
);
