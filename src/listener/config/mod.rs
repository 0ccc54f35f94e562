//! The listener configuration (listener.md §1): TOML → a validated [`Config`] with every script
//! compiled. A file is validated as a whole: every problem is reported with file, line and field
//! (`endpoints.toml:12: endpoint[0].first_hash: must be 32+ hex chars`); unknown fields are errors.

mod endpoint;
mod fields;
mod steps;

pub use steps::{Branch, Operator, Step, StepKind, ValueSource};

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
    pub file: String,
    pub line: usize,
    pub field: String,
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

/// Every error of a refused configuration file (never empty).
#[derive(Clone, Debug)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// `run_mode` of an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    Sync,
    Async,
}

/// A rendered answer: `data`, `html` or `redirect` (endpoint fields or a `respond` step).
#[derive(Clone, Debug)]
pub enum Answer {
    Data(Template),
    Html(Template),
    Redirect(Template),
}

/// `return_type` of an endpoint.
#[derive(Clone, Debug)]
pub enum ReturnType {
    Answer(Answer),
    Continue,
    Sse,
}

impl ReturnType {
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
    pub name: String,
    pub first_hash: String,
    pub second_hash: String,
    pub published: bool,
    pub run_mode: RunMode,
    pub return_type: ReturnType,
    /// `Some((endpoint_key, endpoint_secret))` when `add_authentication = true`.
    pub auth: Option<(Template, Template)>,
    pub require_exp: bool,
    /// `Some(cors_domains)` when `allow_cors = true`.
    pub cors: Option<Template>,
    /// Limit for a `continue`/`sse` sync answer, in ms.
    pub response_timeout_ms: u64,
    pub steps: Vec<Step>,
    /// Roots and children lists, computed once at load.
    pub(crate) tree: Vec<Vec<usize>>,
    /// Rendered settings fields, filled on first use (a reload starts afresh).
    pub(crate) settings: super::settings::SettingsCache,
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
    pub addr: Option<SocketAddr>,
    pub body_limit: u64,
    pub api_key: Option<String>,
    pub records: Option<PathBuf>,
    /// The template library folder (`templates`, relative to the file; docs/templates.md).
    pub templates: Option<PathBuf>,
    pub timezone: chrono_tz::Tz,
    /// Connections served at once (`max_connections`, default 4096); read at start, a reload
    /// keeps the running server's cap.
    pub max_connections: usize,
    /// `state`: where runs and the shared store live (default `sqlite:.flexscript/state.db`
    /// beside this file); read at start, a reload keeps the running server's backend.
    pub state: crate::state::StateSpec,
    /// `durability`: `"normal"` (survives a process crash) or `"fsync"` (power loss).
    pub durability: crate::state::Durability,
    /// `workers`: runs executed at once (default 4 × cores); read at start.
    pub workers: usize,
    /// `history_days` / `history_max`: retention of finished runs.
    pub retention: crate::state::Retention,
}

/// The default `workers`: 4 × the available cores.
pub fn default_workers() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Largest accepted `max_connections`.
pub const MAX_CONNECTIONS_LIMIT: u64 = 1_000_000;

/// A loaded, validated configuration.
#[derive(Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub endpoints: Vec<Arc<Endpoint>>,
    pub warnings: Vec<Diagnostic>,
    pub store: Arc<dyn SharedStore>,
    /// SHA-256 (hex) of the file's text, journaled with each run.
    pub fingerprint: String,
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
    let (_, errors, warnings) = load(path, Arc::new(MemoryStore::new()));
    (errors, warnings)
}

/// Loads `path`, installing `store` (kept across reloads) in the engine.
pub fn load_config_with_store(
    path: &Path,
    store: Arc<dyn SharedStore>,
) -> Result<Config, ConfigErrors> {
    match load(path, store) {
        (Some(c), _, _) => Ok(c),
        (None, errors, _) => Err(ConfigErrors(errors)),
    }
}

/// The configuration (when there is no error), its errors and its warnings.
fn load(
    path: &Path,
    store: Arc<dyn SharedStore>,
) -> (Option<Config>, Vec<Diagnostic>, Vec<Diagnostic>) {
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
            return (None, vec![d], Vec::new());
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
            return (None, vec![d], Vec::new());
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let root = doc.as_table();
    let mut top = Fields::new(&src, root, String::new());

    let server = read_server(&src, top.item("server"), base, &mut errors);
    let mut engine = Engine::new();
    engine.set_timezone(server.timezone);
    engine.set_store(store.clone());
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
        return (None, errors, warnings);
    }
    let config = Config {
        path: path.to_path_buf(),
        server,
        endpoints: endpoints.into_iter().map(|(_, e)| Arc::new(e)).collect(),
        warnings: warnings.clone(),
        store,
        fingerprint: {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(text.as_bytes()))
        },
    };
    (Some(config), errors, warnings)
}

/// The message of a compile error: the engine's message with its position in the script.
pub(crate) fn script_error(e: &crate::Error) -> String {
    match (e.line(), e.column()) {
        (Some(l), Some(c)) => format!("{} (script line {l}, column {c})", e.message()),
        _ => e.message().to_string(),
    }
}

fn read_server(
    src: &Source<'_>,
    item: Option<&Item>,
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> ServerConfig {
    let mut cfg = ServerConfig {
        addr: None,
        body_limit: DEFAULT_BODY_LIMIT,
        api_key: None,
        records: None,
        templates: None,
        timezone: chrono_tz::UTC,
        max_connections: super::server::MAX_CONNECTIONS,
        state: crate::state::StateSpec::parse(crate::state::DEFAULT_STATE, base)
            .unwrap_or(crate::state::StateSpec::Memory),
        durability: crate::state::Durability::Normal,
        workers: default_workers(),
        retention: crate::state::Retention::default(),
    };
    let Some(item) = item else {
        return cfg;
    };
    let Some(table) = item.as_table() else {
        errors.push(src.diag(1, "server", "must be a table ([server])"));
        return cfg;
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
    cfg.retention.days = f.uint_in("history_days", cfg.retention.days, 0, 36_500);
    cfg.retention.max_per_endpoint = f.uint_in(
        "history_max",
        cfg.retention.max_per_endpoint,
        0,
        100_000_000,
    );
    errors.extend(f.finish(&[]));
    cfg
}
