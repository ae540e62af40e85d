//! Wiring. (Pending.)
