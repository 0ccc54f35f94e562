//! The listener configuration (docs/listener.md "Configuration"): TOML → a validated [`Config`] with every script
//! compiled. A file is validated as a whole: every problem is reported with file, line and field
//! (`endpoints.toml:12: endpoint[0].first_hash: must be 32+ hex chars`); unknown fields are errors.

mod endpoint;
mod fields;
mod steps;

pub use steps::{Branch, Operator, Step, StepKind, ValueSource};

use super::guard::{Guard, SystemResolver};
use super::webhook::{self, ClientSettings, HttpClient, Trust};
use crate::host::{JsonRecords, MemoryStore, SharedStore};
use crate::{Engine, FolderLoader, Loader, Template};
use fields::{Fields, Source};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use toml_edit::{ImDocument, Item};

/// Default `body_limit` in bytes (1 MiB).
pub const DEFAULT_BODY_LIMIT: u64 = 1_048_576;

/// One error or warning of a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file's name.
    pub file: String,
    /// 1-based line; 0 when the problem is the whole file.
    pub line: usize,
    /// The field's path (`endpoint[0].first_hash`); empty when none.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.file, self.line, self.field, self.message
            )
        }
    }
}

/// Every error of a refused configuration file (never empty). When the file could not be read
/// or is not TOML at all, the I/O or TOML parse error is kept as the
/// [`source`](std::error::Error::source).
#[derive(Clone, Debug)]
pub struct ConfigErrors {
    /// The errors, in file order.
    pub diagnostics: Vec<Diagnostic>,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ConfigErrors {
    /// Errors without an underlying cause.
    pub fn new(diagnostics: Vec<Diagnostic>) -> ConfigErrors {
        ConfigErrors {
            diagnostics,
            cause: None,
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// What [`load`] found: the configuration (when there is no error), its errors, its warnings,
/// and the I/O or TOML error behind a file that could not be read or parsed.
struct Loaded {
    config: Option<Config>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
    cause: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Loaded {
    fn refused(d: Diagnostic, cause: Arc<dyn std::error::Error + Send + Sync>) -> Loaded {
        Loaded {
            config: None,
            errors: vec![d],
            warnings: Vec::new(),
            cause: Some(cause),
        }
    }
}

/// `run_mode` of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// The request waits for the run (up to `response_timeout_ms`).
    Sync,
    /// The run goes on after the answer.
    Async,
}

/// A rendered answer: `data`, `html` or `redirect` (endpoint fields or a `respond` step).
#[derive(Clone, Debug)]
pub enum Answer {
    /// `data`: JSON (or detected) content rendered from the template.
    Data(Template),
    /// `html`: an HTML page.
    Html(Template),
    /// `redirect`: a 302 to the rendered URL.
    Redirect(Template),
}

/// `return_type` of an endpoint.
#[derive(Clone, Debug)]
pub enum ReturnType {
    /// An answer rendered from the endpoint's own fields.
    Answer(Answer),
    /// `continue`: the workflow answers (a `respond` step, or a run summary).
    Continue,
    /// `sse`: a stream of the workflow's `emit` events.
    Sse,
}

impl ReturnType {
    /// The `return_type` as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            ReturnType::Answer(Answer::Data(_)) => "data",
            ReturnType::Answer(Answer::Html(_)) => "html",
            ReturnType::Answer(Answer::Redirect(_)) => "redirect",
            ReturnType::Continue => "continue",
            ReturnType::Sse => "sse",
        }
    }
}

/// One `[[endpoint]]`.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// The endpoint's name (logs, metrics, the listing).
    pub name: String,
    /// The first path segment after `/listener/`.
    pub first_hash: String,
    /// The second path segment.
    pub second_hash: String,
    /// Whether `/dynamic-endpoints` lists it.
    pub published: bool,
    /// Whether the request waits for the workflow.
    pub run_mode: RunMode,
    /// What the request answers.
    pub return_type: ReturnType,
    /// `Some((endpoint_key, endpoint_secret))` when `add_authentication = true`.
    pub auth: Option<(Template, Template)>,
    /// Whether tokens must carry `exp` (`require_exp`, default true).
    pub require_exp: bool,
    /// `Some(cors_domains)` when `allow_cors = true`.
    pub cors: Option<Template>,
    /// `Some` when the endpoint has an `[endpoint.signature]` table.
    pub signature: Option<SignatureSpec>,
    /// Limit for a `continue`/`sse` sync answer, in ms.
    pub response_timeout_ms: u64,
    /// The workflow, in file order.
    pub steps: Vec<Step>,
    /// Roots and children lists, computed once at load.
    pub(crate) tree: Vec<Vec<usize>>,
    /// Rendered settings fields, filled on first use (a reload starts afresh).
    pub(crate) settings: super::settings::SettingsCache,
    /// This endpoint's metric handles, resolved on its first request.
    pub(crate) metrics: super::metrics::MetricsSlot,
}

impl Endpoint {
    /// The public path of the endpoint.
    pub fn path(&self) -> String {
        format!("/listener/{}/{}", self.first_hash, self.second_hash)
    }
    /// Indices of the root steps.
    pub fn roots(&self) -> &[usize] {
        self.tree.first().map(Vec::as_slice).unwrap_or(&[])
    }
    /// Children of step `parent` (only those on `branch` when given), in file order.
    pub fn children(&self, parent: usize, branch: Option<Branch>) -> Vec<usize> {
        self.tree
            .get(parent + 1)
            .map(|kids| {
                kids.iter()
                    .copied()
                    .filter(|k| branch.is_none() || self.steps[*k].branch == branch)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// An endpoint's `[endpoint.signature]`: the scheme, the secret (a settings field: rendered
/// without request data, `env()` allowed) and the timestamp tolerance.
#[derive(Clone, Debug)]
pub struct SignatureSpec {
    /// The signature scheme.
    pub scheme: super::signature::Scheme,
    /// The shared secret.
    pub secret: Template,
    /// Accepted clock difference of the signed timestamp, in seconds.
    pub tolerance_s: u64,
}

/// `tree[0]` = roots, `tree[i + 1]` = children of step `i`.
pub(crate) fn build_tree(steps: &[Step]) -> Vec<Vec<usize>> {
    let mut tree = vec![Vec::new(); steps.len() + 1];
    for (i, s) in steps.iter().enumerate() {
        tree[s.parent.map_or(0, |p| p + 1)].push(i);
    }
    tree
}

/// The `[server]` table.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `addr`: where to listen (the command line's `--addr` wins).
    pub addr: Option<SocketAddr>,
    /// Largest request body, in bytes (`body_limit`, default 1 MiB).
    pub body_limit: u64,
    /// The key of `/dynamic-endpoints` (`api_key`); `None`: not served.
    pub api_key: Option<String>,
    /// A JSON file of records for the record builtins (`records`).
    pub records: Option<PathBuf>,
    /// The template library folder (`templates`, relative to the file; docs/templates.md).
    pub templates: Option<PathBuf>,
    /// The time zone of dates without an offset (`timezone`, default UTC).
    pub timezone: chrono_tz::Tz,
    /// Connections served at once (`max_connections`, default 4096); read at start, a reload
    /// keeps the running server's cap.
    pub max_connections: usize,
    /// `admin_key`, a settings-like field (no request data, `env()` allowed), rendered on first
    /// use (see [`ServerConfig::admin_key`]). `None`: the admin routes answer 404.
    pub admin_key: Option<Template>,
    /// `admin_addr`: the admin routes and the operations routes are served there instead of on
    /// the public address (read at start, like `addr`).
    pub admin_addr: Option<SocketAddr>,
    /// `log_format` of `flexscript serve` (read at start).
    pub log_format: LogFormat,
    pub(crate) admin_cache: super::admin::AdminKeyCache,
    /// `state`: where runs and the shared store live (default `sqlite:.flexscript/state.db`
    /// beside this file); read at start, a reload keeps the running server's backend.
    pub state: crate::state::StateSpec,
    /// `durability`: `"normal"` (survives a process crash) or `"fsync"` (power loss).
    pub durability: crate::state::Durability,
    /// `workers`: runs executed at once (default 4 × cores); read at start.
    pub workers: usize,
    /// `history_days` / `history_max`: retention of finished runs.
    pub retention: crate::state::Retention,
    /// Outbound webhook settings (`webhook_allow`, `webhook_ca`, `webhook_trust`,
    /// `webhook_max_response_bytes`).
    pub webhook: WebhookSettings,
    /// `lease_s`: on Redis, how long a claimed run stays with a process that stopped
    /// renewing it before another process takes it over (docs/redis.md).
    pub lease_s: u64,
    /// `redis_ca`: PEM certificates (read from the files) trusted instead of the built-in
    /// roots for a `rediss://` state URL (docs/redis.md).
    pub redis_ca: Option<Vec<u8>>,
}

/// `[server] log_format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `name=value` fields after the message (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The `[server] log_format` of the file at `path`, read without loading the rest (logging is
/// set up before the configuration is loaded, so that its errors are logged in that format).
/// An unreadable file or value gives the default: loading the file reports the problem.
pub fn peek_log_format(path: &Path) -> LogFormat {
    let Ok(text) = std::fs::read_to_string(path) else {
        return LogFormat::Text;
    };
    let Ok(doc) = ImDocument::parse(text.as_str()) else {
        return LogFormat::Text;
    };
    doc.as_table()
        .get("server")
        .and_then(|s| s.get("log_format"))
        .and_then(Item::as_str)
        .and_then(LogFormat::parse)
        .unwrap_or_default()
}

/// The default `workers`: 4 × the available cores.
pub fn default_workers() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `[server]` fields of outbound webhooks (docs/security.md).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The destination policy built from `webhook_allow`.
    pub guard: Guard,
    /// The trusted roots: `webhook_trust` plus the `webhook_ca` files.
    pub roots: rustls::RootCertStore,
    /// Default response-body cap of `webhook` steps (default 1 MiB).
    pub max_response_bytes: u64,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            guard: Guard::default(),
            roots: webhook::roots(Trust::Mozilla, &[])
                .unwrap_or_else(|_| rustls::RootCertStore::empty()),
            max_response_bytes: webhook::MAX_BODY as u64,
        }
    }
}

/// Largest accepted `max_connections`.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

/// A loaded, validated configuration.
#[derive(Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The `[server]` table.
    pub server: ServerConfig,
    /// The endpoints, in file order.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// What is allowed but probably a mistake.
    pub warnings: Vec<Diagnostic>,
    /// The shared store the scripts read and write (kept across reloads).
    pub store: Arc<dyn SharedStore>,
    /// SHA-256 (hex) of the file's text, journaled with each run.
    pub fingerprint: String,
    /// The outbound client of `webhook` steps, built from `server.webhook` (a reload builds a
    /// new one, so a changed `webhook_allow` or `webhook_ca` applies to the runs after it).
    pub client: HttpClient,
    /// The engine the endpoints were compiled with (time zone, store, records, snippets):
    /// `flexscript test` renders its template cases with it.
    pub engine: Engine,
}

impl Config {
    /// The published endpoint at `/listener/{first}/{second}`.
    pub fn find(&self, first: &str, second: &str) -> Option<&Arc<Endpoint>> {
        self.endpoints
            .iter()
            .find(|e| e.published && e.first_hash == first && e.second_hash == second)
    }
}

/// Loads and validates `path` with a fresh in-memory shared store.
pub fn load_config(path: &Path) -> Result<Config, ConfigErrors> {
    load_config_with_store(path, Arc::new(MemoryStore::new()))
}

/// `flexscript check`: (errors, warnings) of a configuration file.
pub fn check_config(path: &Path) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
    let l = load(path, Arc::new(MemoryStore::new()), None);
    (l.errors, l.warnings)
}

/// Loads `path`, installing `store` (kept across reloads) in the engine.
pub fn load_config_with_store(
    path: &Path,
    store: Arc<dyn SharedStore>,
) -> Result<Config, ConfigErrors> {
    load_config_with_records(path, store, None)
}

/// [`load_config_with_store`] with the record source replaced by `records` when given
/// (a `flexscript test` case's own `records` file).
pub fn load_config_with_records(
    path: &Path,
    store: Arc<dyn SharedStore>,
    records: Option<&Path>,
) -> Result<Config, ConfigErrors> {
    let l = load(path, store, records);
    match l.config {
        Some(c) => Ok(c),
        None => Err(ConfigErrors {
            diagnostics: l.errors,
            cause: l.cause,
        }),
    }
}

/// The configuration (when there is no error), its errors and its warnings.
fn load(path: &Path, store: Arc<dyn SharedStore>, records: Option<&Path>) -> Loaded {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            let d = Diagnostic {
                file: file.clone(),
                line: 0,
                field: String::new(),
                message: format!("cannot read: {e}"),
            };
            return Loaded::refused(d, Arc::new(e));
        }
    };
    let src = Source {
        file: &file,
        text: &text,
    };
    let doc = match ImDocument::parse(text.as_str()) {
        Ok(d) => d,
        Err(e) => {
            let line = e.span().map(|s| src.line_of(s.start)).unwrap_or(1);
            let d = src.diag(line, "", format!("TOML syntax: {}", e.message()));
            return Loaded::refused(d, Arc::new(e));
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let root = doc.as_table();
    let mut top = Fields::new(&src, root, String::new());

    let (mut server, admin_key) = read_server(&src, top.item("server"), base, &mut errors);
    if let Some(r) = records {
        server.records = Some(r.to_path_buf());
    }
    let mut engine = Engine::new();
    engine.set_timezone(server.timezone);
    engine.set_store(store.clone());
    if let Some((key, line)) = admin_key {
        match engine.compile("server.admin_key", &key) {
            Ok(t) => server.admin_key = Some(t),
            Err(e) => errors.push(src.diag(line, "server.admin_key", script_error(&e))),
        }
    }
    if let Some(records) = &server.records {
        match JsonRecords::from_file(records) {
            Ok(r) => engine.set_records(Arc::new(r)),
            Err(e) => errors.push(src.diag(
                top.line_of("server"),
                "server.records",
                format!("cannot load: {}", e.message()),
            )),
        }
    }
    // The template library: set before the snippets (they may import from it).
    let mut library: Option<FolderLoader> = None;
    if let Some(dir) = &server.templates {
        match FolderLoader::new(dir) {
            Ok(l) => {
                engine.set_loader(l.clone());
                library = Some(l);
            }
            Err(e) => errors.push(src.diag(
                top.line_of("server"),
                "server.templates",
                format!("cannot load: {}", e.message()),
            )),
        }
    }
    if let Some(item) = top.item("snippets") {
        match item.as_table_like() {
            Some(t) => {
                for (name, v) in t.iter() {
                    let line = v.span().map(|s| src.line_of(s.start)).unwrap_or(1);
                    let field = format!("snippets.{name}");
                    match v.as_str() {
                        Some(s) => {
                            if let Err(e) = engine.add_snippet(name, s) {
                                errors.push(src.diag(line, &field, script_error(&e)));
                            }
                        }
                        None => errors.push(src.diag(line, &field, "must be a string")),
                    }
                }
            }
            None => top.error("snippets", "must be a table"),
        }
    }
    if let Some(l) = &library {
        let snippets: Vec<String> = top
            .item("snippets")
            .and_then(|i| i.as_table_like())
            .map(|t| t.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default();
        for name in l.names() {
            if snippets.contains(&name) {
                errors.push(src.diag(
                    top.line_of("snippets"),
                    &format!("snippets.{name}"),
                    format!("`{name}` is both a snippet and a file of the templates folder"),
                ));
            } else if let Err(e) = engine.get_template(&name) {
                // every template of the folder compiles at load (errors are config errors)
                errors.push(src.diag(
                    top.line_of("server"),
                    "server.templates",
                    format!("{name}: {}", script_error(&e)),
                ));
            }
        }
    }

    let mut endpoints = Vec::new();
    match top.item("endpoint") {
        None => {}
        Some(Item::ArrayOfTables(arr)) => {
            for (i, t) in arr.iter().enumerate() {
                let (ep, mut errs, mut warns) = endpoint::read(&src, &engine, t, i);
                errors.append(&mut errs);
                warnings.append(&mut warns);
                if let Some(ep) = ep {
                    endpoints.push((i, ep));
                }
            }
        }
        Some(_) => top.error("endpoint", "must be an array of tables ([[endpoint]])"),
    }
    // Duplicate URLs (checked on the raw hashes, so endpoints with other errors count too).
    if let Some(arr) = root.get("endpoint").and_then(Item::as_array_of_tables) {
        let mut seen: Vec<(String, String, usize)> = Vec::new();
        for (i, t) in arr.iter().enumerate() {
            let get = |k: &str| t.get(k).and_then(Item::as_str).map(str::to_string);
            let (Some(a), Some(b)) = (get("first_hash"), get("second_hash")) else {
                continue;
            };
            if let Some((_, _, j)) = seen.iter().find(|(x, y, _)| *x == a && *y == b) {
                let line = t
                    .key("second_hash")
                    .and_then(|k| k.span())
                    .map(|s| src.line_of(s.start))
                    .unwrap_or(1);
                errors.push(src.diag(
                    line,
                    &format!("endpoint[{i}].second_hash"),
                    format!("same hashes as endpoint[{j}]"),
                ));
            } else {
                seen.push((a, b, i));
            }
        }
    }
    errors.extend(top.finish(&[]));
    warnings.sort_by_key(|d| d.line);
    if !errors.is_empty() {
        errors.sort_by_key(|d| d.line);
        return Loaded {
            config: None,
            errors,
            warnings,
            cause: None,
        };
    }
    let client = HttpClient::new(ClientSettings {
        guard: server.webhook.guard.clone(),
        roots: server.webhook.roots.clone(),
        max_response_bytes: usize::try_from(server.webhook.max_response_bytes)
            .unwrap_or(webhook::MAX_BODY),
        resolver: Arc::new(SystemResolver),
    });
    let config = Config {
        path: path.to_path_buf(),
        client,
        server,
        endpoints: endpoints.into_iter().map(|(_, e)| Arc::new(e)).collect(),
        warnings: warnings.clone(),
        store,
        engine,
        fingerprint: {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        },
    };
    Loaded {
        config: Some(config),
        errors,
        warnings,
        cause: None,
    }
}

/// The message of a compile error: the engine's message with its position in the script.
pub(crate) fn script_error(e: &crate::Error) -> String {
    match (e.line(), e.column()) {
        (Some(l), Some(c)) => format!("{} (script line {l}, column {c})", e.message()),
        _ => e.message().to_string(),
    }
}

/// The `[server]` table, and the source and line of `admin_key` (compiled by the caller, with
/// the engine).
fn read_server(
    src: &Source<'_>,
    item: Option<&Item>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> (ServerConfig, Option<(String, usize)>) {
    let mut cfg = ServerConfig {
        addr: None,
        body_limit: DEFAULT_BODY_LIMIT,
        api_key: None,
        records: None,
        templates: None,
        timezone: chrono_tz::UTC,
        max_connections: super::server::MAX_CONNECTIONS,
        admin_key: None,
        admin_addr: None,
        log_format: LogFormat::Text,
        admin_cache: Default::default(),
        state: crate::state::StateSpec::parse(crate::state::DEFAULT_STATE, base)
            .unwrap_or(crate::state::StateSpec::Memory),
        durability: crate::state::Durability::Normal,
        workers: default_workers(),
        retention: crate::state::Retention::default(),
        webhook: WebhookSettings::default(),
        lease_s: crate::state::redis::DEFAULT_LEASE_S,
        redis_ca: None,
    };
    let Some(item) = item else {
        return (cfg, None);
    };
    let Some(table) = item.as_table() else {
        errors.push(src.diag(1, "server", "must be a table ([server])"));
        return (cfg, None);
    };
    let mut f = Fields::new(src, table, "server".to_string());
    if let Some(a) = f.string("addr") {
        match a.parse() {
            Ok(a) => cfg.addr = Some(a),
            Err(_) => f.error("addr", "must be HOST:PORT with an IP address"),
        }
    }
    cfg.body_limit = f.uint("body_limit", DEFAULT_BODY_LIMIT, 1 << 40);
    cfg.api_key = f.string("api_key");
    if cfg.api_key.as_deref() == Some("") {
        f.error("api_key", "must not be empty");
    }
    cfg.records = f.string("records").map(|r| base.join(r));
    cfg.templates = f.string("templates").map(|t| base.join(t));
    if let Some(tz) = f.string("timezone") {
        match tz.parse() {
            Ok(tz) => cfg.timezone = tz,
            Err(_) => f.error("timezone", format!("unknown time zone `{tz}`")),
        }
    }
    let cap = f.uint_in(
        "max_connections",
        super::server::MAX_CONNECTIONS as u64,
        1,
        MAX_CONNECTIONS_LIMIT,
    );
    cfg.max_connections = usize::try_from(cap).unwrap_or(super::server::MAX_CONNECTIONS);
    let admin_key = f.string("admin_key");
    if admin_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        f.error(
            "admin_key",
            "must not be empty (leave it out to turn the admin routes off)",
        );
    }
    let admin_key = admin_key
        .filter(|k| !k.trim().is_empty())
        .map(|k| (k, f.line_of("admin_key")));
    if let Some(a) = f.string("admin_addr") {
        match a.parse::<SocketAddr>() {
            Ok(a) if cfg.addr.is_some_and(|p| p == a && a.port() != 0) => {
                f.error("admin_addr", "must differ from addr")
            }
            Ok(a) => cfg.admin_addr = Some(a),
            Err(_) => f.error("admin_addr", "must be HOST:PORT with an IP address"),
        }
    }
    if let Some(l) = f.string("log_format") {
        match LogFormat::parse(&l) {
            Some(l) => cfg.log_format = l,
            None => f.error("log_format", "must be \"text\" or \"json\""),
        }
    }
    if let Some(v) = f.string("state") {
        match crate::state::StateSpec::parse(&v, base) {
            Ok(spec) => cfg.state = spec,
            Err(e) => f.error("state", e),
        }
    }
    match f.string("durability").as_deref() {
        None | Some("normal") => {}
        Some("fsync") => cfg.durability = crate::state::Durability::Fsync,
        Some(other) => f.error(
            "durability",
            format!("must be \"normal\" or \"fsync\", not `{other}`"),
        ),
    }
    let workers = f.uint_in("workers", cfg.workers as u64, 1, 100_000);
    cfg.workers = usize::try_from(workers).unwrap_or(cfg.workers);
    cfg.lease_s = f.uint_in("lease_s", cfg.lease_s, 1, 3_600);
    let mut ca = Vec::new();
    for file in strings(&mut f, "redis_ca") {
        match std::fs::read(base.join(&file)) {
            Ok(mut pem) => {
                ca.append(&mut pem);
                ca.push(b'\n');
            }
            Err(e) => f.error("redis_ca", format!("cannot read {file}: {e}")),
        }
    }
    cfg.redis_ca = (!ca.is_empty()).then_some(ca);
    cfg.retention.days = f.uint_in("history_days", cfg.retention.days, 0, 36_500);
    cfg.retention.max_per_endpoint = f.uint_in(
        "history_max",
        cfg.retention.max_per_endpoint,
        0,
        100_000_000,
    );
    cfg.webhook = read_webhook(&mut f, base);
    errors.extend(f.finish(&[]));
    (cfg, admin_key)
}

/// A string or an array of strings (`webhook_allow`, `webhook_ca`).
fn strings(f: &mut Fields<'_>, key: &str) -> Vec<String> {
    let Some(item) = f.item(key) else {
        return Vec::new();
    };
    if let Some(s) = item.as_str() {
        return vec![s.to_string()];
    }
    let Some(arr) = item.as_array() else {
        f.error(key, "must be a string or an array of strings");
        return Vec::new();
    };
    let mut out = Vec::new();
    for v in arr.iter() {
        match v.as_str() {
            Some(s) => out.push(s.to_string()),
            None => f.error(key, "must be a string or an array of strings"),
        }
    }
    out
}

fn read_webhook(f: &mut Fields<'_>, base: &Path) -> WebhookSettings {
    let mut w = WebhookSettings::default();
    let allow = strings(f, "webhook_allow");
    match Guard::new(&allow) {
        Ok(g) => w.guard = g,
        Err(e) => f.error("webhook_allow", e.to_string()),
    }
    let trust = match f.string("webhook_trust").as_deref() {
        None | Some("mozilla") => Trust::Mozilla,
        Some("system") => Trust::System,
        Some(_) => {
            f.error("webhook_trust", "must be \"mozilla\" or \"system\"");
            Trust::Mozilla
        }
    };
    let mut pems = Vec::new();
    for ca in strings(f, "webhook_ca") {
        match std::fs::read(base.join(&ca)) {
            Ok(p) => pems.push(p),
            Err(e) => f.error("webhook_ca", format!("cannot read {ca}: {e}")),
        }
    }
    let pem_refs: Vec<&[u8]> = pems.iter().map(Vec::as_slice).collect();
    let custom = trust != Trust::Mozilla || !pem_refs.is_empty();
    if custom {
        match webhook::roots(trust, &pem_refs) {
            Ok(r) => w.roots = r,
            Err(e) => {
                let key = if pem_refs.is_empty() {
                    "webhook_trust"
                } else {
                    "webhook_ca"
                };
                f.error(key, e.to_string());
            }
        }
    }
    w.max_response_bytes = f.uint_in(
        "webhook_max_response_bytes",
        webhook::MAX_BODY as u64,
        1,
        steps::MAX_RESPONSE_BYTES_LIMIT,
    );
    w
}
