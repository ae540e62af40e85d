//! The local status endpoint. (Pending.)
