//! # telltale-ingest: from the fleet's MQTT traffic to the telemetry store
//!
//! Subscribes to every vehicle's uplink topics (a shared subscription, `$share/<group>/...`, so
//! several instances split the fleet; a plain one when the broker has none), decodes and
//! validates each message, writes batches to the store and acknowledges each QoS 1 message to
//! the broker only after the batch holding it is committed. A crash at any point loses
//! nothing; a redelivery changes nothing (the store is idempotent on the message header).
//!
//! (Skeleton: the implementation is being built.)
