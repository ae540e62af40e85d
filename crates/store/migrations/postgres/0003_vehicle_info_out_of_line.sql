-- Every message a vehicle sends moves its vehicles row's last_seen, and PostgreSQL writes a
-- whole new row version for each update. The VehicleInfo JSON (its ECUs, supported PIDs and
-- schedule: a kilobyte or two) sat inline, so it was copied at every update: the upsert cost
-- three times the devices one (measured with pg_stat_statements under telltale-load). Kept
-- out of line (TOAST) from 128 bytes on, an update copies only an 18-byte pointer to it.
ALTER TABLE vehicles SET (toast_tuple_target = 128);
