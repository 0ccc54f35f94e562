//! The listener runtime (listener.md). Depends on the engine, never the reverse.
pub mod auth;
pub mod cors;
pub mod request;
