-- The telemetry table. With TimescaleDB available it is a plain table here, made a hypertable
-- (compression, retention, continuous aggregates) by Store::migrate right after this, because
-- CREATE EXTENSION and continuous aggregates do not belong in a migration transaction.
-- Without it: native range partitions by device time, one per day, made ahead and dropped by
-- Store::maintain, and a DEFAULT partition so a device with an odd clock never fails an insert.
-- No primary key: the messages table already makes every write happen once.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb') THEN
        CREATE TABLE telemetry (
            vin         TEXT NOT NULL,
            device_id   TEXT NOT NULL,
            signal      TEXT NOT NULL,
            value       DOUBLE PRECISION NOT NULL,
            text        TEXT,
            unit        TEXT NOT NULL,
            pid         BIGINT NOT NULL,
            ecu         BIGINT NOT NULL,
            device_time TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            boot_id     BYTEA NOT NULL,
            seq         BIGINT NOT NULL
        );
    ELSE
        CREATE TABLE telemetry (
            vin         TEXT NOT NULL,
            device_id   TEXT NOT NULL,
            signal      TEXT NOT NULL,
            value       DOUBLE PRECISION NOT NULL,
            text        TEXT,
            unit        TEXT NOT NULL,
            pid         BIGINT NOT NULL,
            ecu         BIGINT NOT NULL,
            device_time TIMESTAMPTZ NOT NULL,
            received_at TIMESTAMPTZ NOT NULL,
            boot_id     BYTEA NOT NULL,
            seq         BIGINT NOT NULL
        ) PARTITION BY RANGE (device_time);
        CREATE TABLE telemetry_default PARTITION OF telemetry DEFAULT;

        -- What TimescaleDB's continuous aggregates give, computed on read with date_bin.
        CREATE VIEW telemetry_minute AS
            SELECT vin, signal,
                   date_bin(INTERVAL '1 minute', device_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                   count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
                   max(value) AS max_value
            FROM telemetry
            GROUP BY vin, signal, bucket;
        CREATE VIEW telemetry_hour AS
            SELECT vin, signal,
                   date_bin(INTERVAL '1 hour', device_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
                   count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
                   max(value) AS max_value
            FROM telemetry
            GROUP BY vin, signal, bucket;
    END IF;
END
$$;

CREATE INDEX telemetry_vin_signal_time ON telemetry (vin, signal, device_time DESC);
