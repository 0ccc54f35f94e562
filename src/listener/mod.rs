//! The listener runtime (docs/listener.md). Depends on the engine, never the reverse.
//!
//! `config` loads and validates the TOML file; `server` accepts connections and hands each
//! request to `handler`, which answers through `respond`/`sse` and runs the `workflow`
//! (`condition` operators, `webhook` calls through the `guard`ed connector, signed with
//! `signature`, which also verifies signed requests); `listing` serves `/dynamic-endpoints`; `log`
//! buffers and formats the log lines; `cli` holds the logic of the `serve`, `check`,
//! `new-endpoint` and `token` commands; `admin` serves the health, readiness, metrics and admin
//! routes and `metrics` keeps the Prometheus metrics. The pure
//! request modules `request`, `auth` and `cors` have no sockets.
pub mod admin;
pub mod auth;
pub mod cli;
pub mod condition;
pub mod config;
pub mod cors;
pub mod guard;
mod handler;
mod listing;
pub mod log;
pub mod metrics;
pub mod request;
pub mod respond;
pub mod runs;
pub mod runs_api;
pub mod server;
mod settings;
pub mod signature;
pub mod sse;
pub mod testing;
mod timer;
pub mod webhook;
pub mod workflow;

pub use admin::ReadyCheck;
pub use config::{check_config, load_config, Config, ConfigErrors, Diagnostic, LogFormat};
pub use server::{start, start_with, Options, Running, StartError};
