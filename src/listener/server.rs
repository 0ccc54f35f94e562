//! The HTTP/1 server (docs/listener.md "Operations"): accept loop, per-connection header-read
//! timeout (30 s, one tokio sleep per connection reused from request to request:
//! src/listener/timer.rs), one structured log line per request (endpoint name, status,
//! duration, run id — never the path, which holds the URL hashes, nor any header), panics
//! turned into 500s, atomic reload, graceful shutdown (stop accepting, let requests finish for
//! up to [`GRACE`], SSE streams end with `event: end`), and a cap on open connections
//! ([`MAX_CONNECTIONS`]): at the cap the accept loop stops accepting until a connection closes,
//! so further clients wait in the kernel's listen backlog and memory stays bounded. With
//! `[server] admin_addr` a second listener serves the operations and admin routes (see
//! `admin`), with its own small connection cap ([`ADMIN_CONNECTIONS`]) so that public traffic
//! cannot crowd out health checks and scrapes. Every answered request is counted in the
//! server's [`Metrics`].

use super::admin::{self, ReadyCheck, Role};
use super::config::ConfigErrors;
use super::config::{load_config_with_store, Config};
use super::handler;
use super::metrics::Metrics;
use super::respond::{json_error, Body};
use super::runs::Runner;
use crate::state::{Backend, StateError, StateSpec};
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

/// Time given to open requests after a shutdown signal.
pub const GRACE: Duration = Duration::from_secs(10);
/// Limit for reading a request's headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on simultaneously open connections (`[server] max_connections`, or
/// [`Options::max_connections`]).
pub const MAX_CONNECTIONS: usize = 4096;
/// Default address when neither `--addr` nor `[server] addr` is given.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::new(127, 0, 0, 1),
    8080,
));
/// Cap on simultaneously open connections of the `admin_addr` listener.
pub const ADMIN_CONNECTIONS: usize = 64;

/// What every request handler shares.
pub struct State {
    config: Arc<RwLock<Arc<Config>>>,
    /// Turns true when the server shuts down (streams end, runs stop waiting).
    pub shutdown: watch::Receiver<bool>,
    path: PathBuf,
    /// The conditions of `/readyz` (a serving process has its configuration loaded).
    pub readiness: Vec<ReadyCheck>,
    /// Whether an `admin_addr` listener serves the admin routes (the public one then does not).
    pub separate_admin: bool,
    /// The run journal, worker pool and timers (kept across reloads).
    pub runner: Arc<Runner>,
}

impl State {
    /// The current configuration (a snapshot: a reload does not affect running requests).
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}

impl State {
    /// A state that serves requests without a socket (`flexscript test`, src/listener/testing.rs):
    /// `config` loaded with `backend`'s shared store, webhooks through `client`. Call inside a
    /// tokio runtime (the runner spawns its timer task). The returned sender is the shutdown
    /// signal: keep it alive while requests are served.
    pub(crate) fn detached(
        mut config: Config,
        backend: Arc<dyn Backend>,
        client: super::webhook::HttpClient,
    ) -> (Arc<State>, watch::Sender<bool>) {
        // The configuration's own client is replaced: webhooks go through `client` only.
        config.client = client;
        let (stop, shutdown) = watch::channel(false);
        let path = config.path.clone();
        let workers = config.server.workers;
        let config = Arc::new(RwLock::new(Arc::new(config)));
        let runner = Runner::new(backend, workers, config.clone());
        let state = Arc::new(State {
            config,
            shutdown,
            path,
            readiness: Vec::new(),
            separate_admin: false,
            runner,
        });
        (state, stop)
    }
}

/// A running server. Dropping it without [`Running::shutdown`] also stops the server (the
/// shutdown channel closes), without waiting.
pub struct Running {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// The bound public address (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
    /// The bound address of the `admin_addr` listener, when there is one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }
    /// The server's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.state.runner.metrics
    }
    /// Stops accepting, waits up to [`GRACE`] for open requests, then returns.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
    /// Reloads the configuration file; a broken file is refused (and logged) and the old one
    /// keeps serving. The listening address does not change.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let old = self.state.config();
        match load_config_with_store(&self.state.path, old.store.clone()) {
            Ok(new) => {
                for w in &new.warnings {
                    tracing::warn!(warning = %w, "configuration warning");
                }
                admin::announce(&new);
                match self.state.config.write() {
                    Ok(mut c) => *c = Arc::new(new),
                    Err(p) => *p.into_inner() = Arc::new(new),
                }
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(errors = %e, "reload refused, keeping the previous configuration");
                Err(e)
            }
        }
    }
    /// The configuration file being served.
    pub fn config_path(&self) -> &Path {
        &self.state.path
    }
    /// The template library folder of the configuration in force (`[server] templates`).
    pub fn templates_dir(&self) -> Option<PathBuf> {
        self.state.config().server.templates.clone()
    }
    /// The state backend (journal and shared store) of this server.
    pub fn backend(&self) -> Arc<dyn Backend> {
        self.state.runner.backend.clone()
    }
    /// The runner: gauges of queued/running/waiting runs, resuming retried runs.
    pub fn runner(&self) -> Arc<Runner> {
        self.state.runner.clone()
    }
}

/// Server settings given by the embedding program, overriding the configuration file.
///
/// `#[non_exhaustive]`: start from `Options::default()` and use the `with_*` builders, so that
/// new settings are not breaking changes.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Options {
    /// Connections served at once; more wait unaccepted until one closes (at least 1).
    /// `None`: the file's `[server] max_connections` (default [`MAX_CONNECTIONS`]).
    pub max_connections: Option<usize>,
    /// More conditions for `/readyz` (each one's failure reason is shown to anyone asking).
    pub readiness: Vec<ReadyCheck>,
    /// A `[server] state` value (`memory`, `sqlite:PATH`, `redis://…`) overriding the file's
    /// (`serve --state`); a relative path is relative to the working directory.
    pub state: Option<String>,
}

impl Options {
    /// Serves at most `n` connections at once (see [`Options::max_connections`]).
    pub fn with_max_connections(mut self, n: usize) -> Options {
        self.max_connections = Some(n);
        self
    }
    /// Adds a condition to `/readyz`.
    pub fn with_readiness(mut self, check: ReadyCheck) -> Options {
        self.readiness.push(check);
        self
    }
    /// Uses the state backend `spec` instead of the file's (see [`Options::state`]).
    pub fn with_state(mut self, spec: impl Into<String>) -> Options {
        self.state = Some(spec.into());
        self
    }
}

/// Why a server did not start. `Display` is the message `serve` prints (one `error:` line per
/// line); [`source`](std::error::Error::source) is the configuration's, the state backend's or
/// the socket's error.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The configuration file is refused (every error, with file, line and field).
    Config(ConfigErrors),
    /// The state backend (`[server] state` or [`Options::state`]) is malformed or cannot be
    /// opened.
    State(String),
    /// The unfinished runs of the journal could not be read back.
    Recover(StateError),
    /// The public (or, with `admin: true`, the `admin_addr`) address cannot be bound.
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Whether it is `[server] admin_addr`.
        admin: bool,
        /// The socket's error.
        source: std::io::Error,
    },
    /// Another socket error (reading back the bound address).
    Io(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::State(e) => f.write_str(e),
            StartError::Recover(e) => write!(f, "{e}"),
            StartError::Listen {
                addr,
                admin: false,
                source,
            } => write!(f, "cannot listen on {addr}: {source}"),
            StartError::Listen {
                addr,
                admin: true,
                source,
            } => write!(f, "cannot listen on {addr} (admin_addr): {source}"),
            StartError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::State(_) => None,
            StartError::Recover(e) => Some(e),
            StartError::Listen { source, .. } => Some(source),
            StartError::Io(e) => Some(e),
        }
    }
}

/// Loads `config_path` and binds `addr` (else `[server] addr`, else [`DEFAULT_ADDR`]), with
/// the default [`Options`].
pub async fn start(config_path: &Path, addr: Option<SocketAddr>) -> Result<Running, StartError> {
    start_with(config_path, addr, Options::default()).await
}

/// [`start`] with explicit [`Options`].
pub async fn start_with(
    config_path: &Path,
    addr: Option<SocketAddr>,
    options: Options,
) -> Result<Running, StartError> {
    // Read once for the server settings, then again with the backend's shared store.
    let first = super::config::load_config(config_path).map_err(StartError::Config)?;
    let spec = match &options.state {
        Some(v) => StateSpec::parse(v, Path::new(".")).map_err(StartError::State)?,
        None => first.server.state.clone(),
    };
    let backend = spec
        .open_with(
            first.server.durability,
            first.server.lease_s,
            first.server.redis_ca.as_deref(),
        )
        .map_err(StartError::State)?;
    let config =
        load_config_with_store(config_path, backend.store()).map_err(StartError::Config)?;
    for w in &config.warnings {
        tracing::warn!(warning = %w, "configuration warning");
    }
    admin::announce(&config);
    let addr = addr.or(config.server.addr).unwrap_or(DEFAULT_ADDR);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr,
            admin: false,
            source,
        })?;
    let addr = listener.local_addr().map_err(StartError::Io)?;
    let admin_listener = match config.server.admin_addr {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|source| StartError::Listen {
                    addr: a,
                    admin: true,
                    source,
                })?,
        ),
        None => None,
    };
    let admin_addr = admin_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()
        .map_err(StartError::Io)?;
    let (stop, shutdown) = watch::channel(false);
    let cap = options
        .max_connections
        .unwrap_or(config.server.max_connections)
        .max(1);
    let workers = config.server.workers;
    let config = Arc::new(RwLock::new(Arc::new(config)));
    let runner = Runner::new(backend, workers, config.clone());
    let resumed = runner.recover().await.map_err(StartError::Recover)?;
    if resumed > 0 {
        tracing::info!(runs = resumed, "unfinished runs resumed");
    }
    let mut readiness = vec![backend_check(runner.backend.clone())];
    readiness.extend(options.readiness);
    let state = Arc::new(State {
        config,
        shutdown,
        path: config_path.to_path_buf(),
        readiness,
        separate_admin: admin_listener.is_some(),
        runner,
    });
    let public = accept_loop(
        listener,
        state.clone(),
        Arc::new(Semaphore::new(cap)),
        Role::Public,
    );
    let task = match admin_listener {
        None => tokio::spawn(public),
        Some(l) => {
            let admin = accept_loop(
                l,
                state.clone(),
                Arc::new(Semaphore::new(ADMIN_CONNECTIONS)),
                Role::Admin,
            );
            tokio::spawn(async move {
                tokio::join!(public, admin);
            })
        }
    };
    Ok(Running {
        addr,
        admin_addr,
        state,
        stop,
        task,
    })
}

/// `/readyz`'s probe of the state backend: a one-run listing (a read every backend answers
/// quickly). Only an unavailable backend fails it (a corrupt record is that run's problem).
fn backend_check(backend: Arc<dyn Backend>) -> ReadyCheck {
    ReadyCheck::new("state backend", move || {
        let probe = backend.list_runs(crate::state::RunFilter {
            limit: 1,
            ..Default::default()
        });
        async move {
            match probe.await {
                Err(crate::state::StateError::Unavailable(reason)) => Err(reason),
                _ => Ok(()),
            }
        }
    })
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<State>,
    permits: Arc<Semaphore>,
    role: Role,
) {
    let mut shutdown = state.shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        // A permit first: at the cap nothing is accepted until a connection task ends (its
        // permit is dropped with it).
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    conns.spawn(async move {
                        connection(stream, state, role).await;
                        drop(permit);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(GRACE, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            open = conns.len(),
            "grace period over, closing the remaining connections"
        );
    }
    conns.abort_all();
}

async fn connection(stream: tokio::net::TcpStream, state: Arc<State>, role: Role) {
    let mut shutdown = state.shutdown.clone();
    let service_state = state.clone();
    let service = service_fn(move |req| serve(service_state.clone(), req, role));
    // Head and body copied into one buffer and written with one `write`: the answers are small,
    // and hyper's queue of buffers for `writev` cost more per request than the copy (400
    // instructions of 24.6k on the benchmark's request; docs/listener.md, "Performance").
    let conn = http1::Builder::new()
        .writev(false)
        .timer(super::timer::ConnTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    if *shutdown.borrow() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = shutdown.changed() => conn.as_mut().graceful_shutdown(),
    }
    let _ = conn.await;
}

async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
    role: Role,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let handled = AssertUnwindSafe(handler::handle(state.clone(), req, role))
        .catch_unwind()
        .await;
    let h = match handled {
        Ok(h) => h,
        Err(_) => {
            tracing::error!("request handler panicked");
            handler::Handled {
                response: Some(json_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error",
                )),
                endpoint: None,
                run_id: None,
            }
        }
    };
    let elapsed = start.elapsed();
    let status = h.status();
    match &h.endpoint {
        Some(ep) => ep.metrics.get_or_resolve(&state.runner.metrics, &ep.name),
        None => state.runner.metrics.no_endpoint(),
    }
    .request(status, elapsed);
    let endpoint = h.endpoint.as_ref().map_or("-", |e| e.name.as_str());
    // Whole microseconds: the line says `duration_ms=0.412`, written without a float formatter
    // (src/listener/log.rs, `millis_text`); the JSON format writes the same number.
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let run_id = h.run_id.as_deref().unwrap_or("-");
    // The same line, written without tracing's dispatch when `serve`'s text format is on
    // (src/listener/log.rs, `request_line`); `enabled!` is this module's info filter.
    if super::log::direct() && tracing::enabled!(tracing::Level::INFO) {
        super::log::request_line(endpoint, method.as_str(), status, micros, run_id);
    } else {
        let duration_ms = micros as f64 / 1000.0;
        tracing::info!(endpoint, method = %method, status, duration_ms, run_id, "request");
    }
    Ok(h.into_response())
}
