//! PostgreSQL for the end-to-end tests: [`telltale_testdb`], the one place tests get a
//! database, a private server or the shared TimescaleDB server.

pub use telltale_testdb::*;
