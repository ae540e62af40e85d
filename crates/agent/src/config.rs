//! The agent's configuration. (Pending.)
