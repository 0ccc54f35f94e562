//! The logic behind the listener commands of the `flexscript` binary (cli-and-layout.md):
//! `serve`, `check FILE.toml`, `new-endpoint`, `token`. `main.rs` only parses arguments.

use super::config::check_config;
use super::server::{start_with, Options, Running};
use rand::RngCore;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Logs go to stderr (stdout carries only the ready line) through [`super::log`]'s buffer,
/// filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(super::log::BufferedStderr::new())
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .fmt_fields(super::log::LineFields)
        .try_init();
}

/// `flexscript check FILE.toml`: prints every error and warning on stderr; true when no error.
pub fn check(path: &Path) -> bool {
    let (errors, warnings) = check_config(path);
    for e in &errors {
        eprintln!("error: {e}");
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    errors.is_empty()
}

/// `flexscript serve`: runs until SIGINT/SIGTERM; SIGHUP (and `--watch`) reload the file.
/// Returns the process exit code.
pub fn serve(config: &Path, addr: Option<&str>, watch: bool, state: Option<&str>) -> u8 {
    init_logging();
    let addr: Option<SocketAddr> = match addr.map(str::parse).transpose() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("error: --addr must be HOST:PORT with an IP address");
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let code = runtime.block_on(async {
        // Handlers first: a signal sent right after the ready line must not kill the process.
        let Some(signals) = Signals::install() else {
            eprintln!("error: cannot install signal handlers");
            return 1;
        };
        let options = Options {
            state: state.map(str::to_string),
            ..Options::default()
        };
        let running = match start_with(config, addr, options).await {
            Ok(r) => r,
            Err(e) => {
                for line in e.lines() {
                    eprintln!("error: {line}");
                }
                return 1;
            }
        };
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on http://{}", running.local_addr());
        let _ = out.flush();
        run_until_signal(running, signals, watch).await
    });
    super::log::flush();
    code
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The signals `serve` reacts to.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> Option<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Some(Signals {
            term: signal(SignalKind::terminate()).ok()?,
            int: signal(SignalKind::interrupt()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }
}

#[cfg(unix)]
async fn run_until_signal(running: Running, mut s: Signals, watch: bool) -> u8 {
    let path = running.config_path().to_path_buf();
    let mut seen = modified(&path);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = s.term.recv() => break,
            _ = s.int.recv() => break,
            _ = s.hup.recv() => { let _ = running.reload(); }
            _ = tick.tick(), if watch => {
                let now = modified(&path);
                if now != seen {
                    seen = now;
                    let _ = running.reload();
                }
            }
        }
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    0
}

#[cfg(not(unix))]
struct Signals;

#[cfg(not(unix))]
impl Signals {
    fn install() -> Option<Signals> {
        Some(Signals)
    }
}

#[cfg(not(unix))]
async fn run_until_signal(running: Running, _s: Signals, _watch: bool) -> u8 {
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown().await;
    0
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// `flexscript new-endpoint NAME`: a ready `[[endpoint]]` stanza with fresh 128-bit hashes, a
/// random `endpoint_key` (64 bits, hex) and a 32-byte random `endpoint_secret` (hex).
pub fn new_endpoint(name: &str) -> String {
    let quoted = serde_json::Value::String(name.to_string()).to_string();
    format!(
        r#"[[endpoint]]
name = {quoted}
first_hash = "{}"
second_hash = "{}"
published = true
run_mode = "sync"
return_type = "data"
return_data = '''{{"status": "received"}}'''
add_authentication = true
endpoint_key = "issuer-{}"
endpoint_secret = "{}"
require_exp = true
allow_cors = false
"#,
        random_hex(16),
        random_hex(16),
        random_hex(8),
        random_hex(32),
    )
}

/// `flexscript token`: a signed JWT (see `auth::sign`).
pub fn token(
    key: &str,
    secret: &str,
    alg: &str,
    ttl: u64,
    data: Option<&str>,
) -> Result<String, String> {
    let data = data
        .map(serde_json::from_str::<serde_json::Value>)
        .transpose()
        .map_err(|e| format!("--data is not valid JSON: {e}"))?;
    super::auth::sign(key, secret, alg, ttl, data)
}
