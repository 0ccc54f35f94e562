//! The logic behind the listener commands of the `flexscript` binary (README.md "Command line"):
//! `serve`, `check FILE.toml`, `new-endpoint`, `token`, `runs`. `main.rs` only parses
//! arguments.

use super::config::{check_config, peek_log_format, LogFormat};
use super::server::{start_with, Options, Running};
use rand::RngCore;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Logs go to stderr (stdout carries only the ready lines) through [`super::log`]'s buffer,
/// filtered by `RUST_LOG` (default `info`), as text or as one JSON object per line
/// (`timestamp`, `level`, `message` and the event's fields at the top level; JSON string
/// escaping keeps control characters from breaking a line).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(super::log::BufferedStderr::new())
        .with_timer(super::log::Timestamp)
        .with_target(false);
    let _ = match format {
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let installed = builder
                .with_ansi(ansi)
                .fmt_fields(super::log::LineFields)
                .event_format(super::log::LineFormat::new())
                .try_init();
            // Span directives (`[span]`) could filter the line by context; the direct path
            // leaves those filters to tracing.
            let spans = std::env::var("RUST_LOG").is_ok_and(|f| f.contains('['));
            super::log::set_direct(installed.is_ok() && !ansi && !spans);
            installed
        }
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
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
    init_logging(peek_log_format(config));
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
        let mut options = Options::default();
        if let Some(spec) = state {
            options = options.with_state(spec);
        }
        // A file changed while the configuration and the library load must not be missed
        // by `--watch`: the first snapshot is taken before the ready line, and a file
        // modified since `loading` makes the first tick reload.
        let loading = SystemTime::now();
        let running = match start_with(config, addr, options).await {
            Ok(r) => r,
            Err(e) => {
                for line in e.to_string().lines() {
                    eprintln!("error: {line}");
                }
                return 1;
            }
        };
        let seen = watch
            .then(|| watched(&running))
            .filter(|w| !w.changed_since(loading));
        let mut out = std::io::stdout();
        let _ = writeln!(out, "listening on http://{}", running.local_addr());
        if let Some(admin) = running.admin_addr() {
            let _ = writeln!(out, "admin listening on http://{admin}");
        }
        let _ = out.flush();
        run_until_signal(running, signals, watch, seen).await
    });
    super::log::flush();
    code
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// What `serve --watch` compares from one tick to the next: the configuration file's
/// modification time and, when `[server] templates` names a folder, the path, size and
/// modification time of every file under it (docs/templates.md "In the listener"). A file
/// added, removed or rewritten in the folder reloads like a change of the configuration.
#[derive(PartialEq, Debug)]
struct Watched {
    config: Option<SystemTime>,
    templates: Vec<(PathBuf, u64, Option<SystemTime>)>,
}

impl Watched {
    /// Whether any watched file was modified at or after `t` (a clock step backwards only
    /// costs one reload).
    fn changed_since(&self, t: SystemTime) -> bool {
        self.config.is_some_and(|m| m >= t)
            || self
                .templates
                .iter()
                .any(|(_, _, m)| m.is_some_and(|m| m >= t))
    }
}

/// At most this many files of the templates folder are compared (a library is far smaller).
const WATCH_FILES: usize = 10_000;

fn watched(running: &Running) -> Watched {
    let mut templates = Vec::new();
    if let Some(dir) = running.templates_dir() {
        watch_walk(&dir, 0, &mut templates);
        templates.sort();
    }
    Watched {
        config: modified(running.config_path()),
        templates,
    }
}

fn watch_walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if out.len() >= WATCH_FILES {
            return;
        }
        let path = entry.path();
        // `metadata` follows symbolic links, as the loader does when it reads a file
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < 32 {
                watch_walk(&path, depth + 1, out);
            }
        } else {
            out.push((path, meta.len(), meta.modified().ok()));
        }
    }
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
async fn run_until_signal(
    running: Running,
    mut s: Signals,
    watch: bool,
    mut seen: Option<Watched>,
) -> u8 {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = s.term.recv() => break,
            _ = s.int.recv() => break,
            _ = s.hup.recv() => { let _ = running.reload(); }
            _ = tick.tick(), if watch => {
                let now = watched(&running);
                if seen.as_ref() != Some(&now) {
                    // the snapshot taken before the reload: a file written during it is
                    // seen at the next tick (a reload that names another templates folder
                    // costs one more reload, then watches the new folder)
                    seen = Some(now);
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
async fn run_until_signal(
    running: Running,
    _s: Signals,
    _watch: bool,
    _seen: Option<Watched>,
) -> u8 {
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
    super::auth::sign(key, secret, alg, ttl, data).map_err(|e| e.to_string())
}

/// What `flexscript runs` does.
#[derive(Clone, Debug)]
pub enum RunsAction {
    /// List runs, newest first.
    List {
        /// Only runs of this endpoint.
        endpoint: Option<String>,
        /// Only runs in this status.
        status: Option<String>,
        /// At most this many runs (1..=1000).
        limit: usize,
        /// The cursor of the next (older) page.
        before: Option<String>,
        /// Print the page as JSON.
        json: bool,
    },
    /// Print one run's whole record (JSON).
    Show {
        /// The run's id.
        id: String,
    },
    /// Queue a failed or interrupted run again (`from`: `failed` or `start`).
    Retry {
        /// The run's id.
        id: String,
        /// `failed` (from its failed step) or `start`.
        from: String,
    },
}

/// `flexscript runs …`: reads (and retries) runs in the state backend of the configuration at
/// `config` (or `state`), directly: a server may be running on it or not. Returns the exit code
/// (0 done, 1 any error, printed on stderr).
pub fn runs(config: &Path, state: Option<&str>, action: RunsAction) -> u8 {
    match runs_inner(config, state, action) {
        Ok(out) => {
            let mut stdout = std::io::stdout();
            if stdout
                .write_all(out.as_bytes())
                .and_then(|_| stdout.flush())
                .is_err()
            {
                return 1;
            }
            0
        }
        Err(e) => {
            for line in e.lines() {
                eprintln!("error: {line}");
            }
            1
        }
    }
}

fn runs_inner(config: &Path, state: Option<&str>, action: RunsAction) -> Result<String, String> {
    use super::runs_api;
    use crate::state::{RunFilter, StateSpec};
    let loaded = super::config::load_config(config).map_err(|e| e.to_string())?;
    let spec = match state {
        Some(v) => StateSpec::parse(v, Path::new("."))?,
        None => loaded.server.state.clone(),
    };
    if spec == StateSpec::Memory {
        return Err(
            "state = \"memory\" keeps runs inside the serving process only: use the admin API (GET /runs) of the running server"
                .into(),
        );
    }
    let backend = spec.open_reader_with(loaded.server.redis_ca.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        match action {
            RunsAction::List {
                endpoint,
                status,
                limit,
                before,
                json,
            } => {
                let filter = RunFilter {
                    endpoint,
                    status: status
                        .as_deref()
                        .map(runs_api::parse_status)
                        .transpose()
                        .map_err(|e| e.to_string())?,
                    limit: runs_api::parse_limit(&limit.to_string()).map_err(|e| e.to_string())?,
                    before,
                };
                let page = backend
                    .list_runs(filter)
                    .await
                    .map_err(|e| e.to_string())?;
                if json {
                    Ok(format!("{}\n", runs_api::page_json(&page)))
                } else {
                    Ok(runs_table(&page))
                }
            }
            RunsAction::Show { id } => {
                let rec = backend.get_run(&id).await.map_err(|e| match e {
                    crate::state::StateError::NotFound => format!("no run {id}"),
                    e => e.to_string(),
                })?;
                serde_json::to_string_pretty(&runs_api::record_json(&rec))
                    .map(|s| s + "\n")
                    .map_err(|e| e.to_string())
            }
            RunsAction::Retry { id, from } => {
                let from = runs_api::parse_from(&from).map_err(|e| e.to_string())?;
                let rec = backend.retry_run(&id, from).await.map_err(|e| match e {
                    crate::state::StateError::NotFound => format!("no run {id}"),
                    e => e.to_string(),
                })?;
                Ok(format!(
                    "run {} of \"{}\" queued again (attempt {}, from {}); a server on this state runs it within a few seconds, or when it starts\n",
                    rec.id,
                    rec.endpoint,
                    rec.attempt,
                    match from {
                        crate::state::RetryFrom::Failed => "its failed step",
                        crate::state::RetryFrom::Start => "the first step",
                    }
                ))
            }
        }
    })
}

/// A listing page as an aligned table (times in UTC, RFC 3339), with the next cursor.
fn runs_table(page: &crate::state::RunPage) -> String {
    if page.runs.is_empty() {
        return "no runs\n".into();
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
            .unwrap_or_else(|| ms.to_string())
    };
    let one_line = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let mut rows = vec![[
        "ID".to_string(),
        "ENDPOINT".to_string(),
        "STATUS".to_string(),
        "CREATED".to_string(),
        "DURATION".to_string(),
        "ERROR".to_string(),
    ]];
    for r in &page.runs {
        rows.push([
            r.id.clone(),
            one_line(&r.endpoint),
            r.status.as_str().to_string(),
            time(r.created),
            r.duration_ms
                .map_or_else(|| "-".to_string(), |d| format!("{d} ms")),
            one_line(r.error.as_deref().unwrap_or("")),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i == 5 {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[i] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if let Some(next) = &page.next {
        out.push_str(&format!("next page: --before {next}\n"));
    }
    out
}
