//! The listener runtime (listener.md). Depends on the engine, never the reverse.
//!
//! `config` loads and validates the TOML file; `server` accepts connections and hands each
//! request to `handler`, which answers through `respond`/`sse` and runs the `workflow`
//! (`condition` operators, `webhook` calls); `listing` serves `/dynamic-endpoints`; `log`
//! buffers and formats the log lines; `cli` holds the logic of the `serve`, `check`,
//! `new-endpoint` and `token` commands. The pure
//! request modules `request`, `auth` and `cors` have no sockets.
pub mod auth;
pub mod cli;
pub mod condition;
pub mod config;
pub mod cors;
mod handler;
mod listing;
pub mod log;
pub mod request;
pub mod respond;
pub mod runs;
pub mod server;
mod settings;
pub mod sse;
pub mod webhook;
pub mod workflow;

pub use config::{check_config, load_config, Config, ConfigErrors, Diagnostic};
pub use server::{start, start_with, Options, Running};
