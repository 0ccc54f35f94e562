//! `flexscript test` (docs/testing.md): runs case files against a configuration in-process.
//!
//! Each case is served by `handler::handle`, the function the server calls for every
//! request, on a fresh in-memory state backend, on its own thread with a current-thread tokio
//! runtime whose clock is paused (a `delay_ms` or a `response_timeout_ms` passes instantly)
//! and a frozen [`crate::clock`] (`now` and the seed). Outbound webhooks go to the case's
//! stubs through the [`Transport`] seam of src/listener/webhook.rs; the shared store is wrapped
//! to record writes.

use super::admin::Role;
use super::config::{load_config_with_records, Config};
use super::handler;
use super::webhook::{HttpClient, SendError, Sending, Transport};
use crate::host::SharedStore;
use crate::state::{RunStatus, StateSpec};
use crate::{RenderOptions, Value};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION};
use hyper::{HeaderMap, Request, StatusCode};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use toml::Spanned;

/// The default frozen instant when a case file gives no `now`.
pub const DEFAULT_NOW: &str = "2026-01-01T00:00:00Z";
/// How far the paused clock may run while a case's workflow finishes (a day).
const MAX_VIRTUAL: Duration = Duration::from_secs(24 * 3600);
/// How long preset `memory` values live (a century: for the case, forever).
const PRESET_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
/// Response headers never shown in snapshots (transport details).
const HIDDEN_HEADERS: [&str; 2] = ["content-length", "date"];
/// Whether an outbound request header carries a credential (its value is never recorded):
/// `authorization`, `proxy-authorization`, `cookie`, and any name holding `token`, `secret`,
/// `signature`, `password`, `api-key` or `apikey`.
fn is_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "proxy-authorization", "cookie"].contains(&n.as_str())
        || [
            "token",
            "secret",
            "signature",
            "password",
            "api-key",
            "apikey",
            "api_key",
        ]
        .iter()
        .any(|w| n.contains(w))
}

/// The command line of `flexscript test`.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// The listener configuration under test.
    pub config: PathBuf,
    /// Case files or folders (empty: every `*.cases.toml` under `tests/` beside the configuration).
    pub cases: Vec<PathBuf>,
    /// Rewrite the expected snapshots instead of comparing.
    pub update: bool,
    /// Only cases whose name contains this.
    pub filter: Option<String>,
    /// Also write a JUnit XML report here.
    pub junit: Option<PathBuf>,
    /// Cases run at once (at least 1).
    pub jobs: usize,
}

/// A usage problem: exit code 2 with this text.
#[derive(Debug)]
pub struct Usage(pub String);

// ---------------------------------------------------------------------------------------------
// Case files

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct Defaults {
    now: Option<String>,
    seed: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    case: Vec<Spanned<Case>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum TokenSpec {
    Raw(String),
    Signed {
        data: toml::Value,
        #[serde(default)]
        ttl: Option<u64>,
    },
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Stub {
    url: String,
    method: Option<String>,
    #[serde(default = "ok_status")]
    status: u16,
    #[serde(default)]
    body: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
struct Expect {
    status: Option<u16>,
    content_type: Option<String>,
    json: Option<toml::Value>,
    body: Option<String>,
    body_contains: Option<String>,
    headers: Option<BTreeMap<String, String>>,
    steps: Option<Vec<String>>,
    memory: Option<toml::Table>,
    output: Option<String>,
    #[serde(default)]
    snapshot: bool,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    endpoint: Option<Spanned<String>>,
    template: Option<Spanned<String>>,
    source: Option<String>,
    context: Option<toml::Table>,
    method: Option<String>,
    query: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    token: Option<TokenSpec>,
    memory: Option<toml::Table>,
    records: Option<String>,
    now: Option<String>,
    seed: Option<u64>,
    #[serde(default)]
    webhook: Vec<Stub>,
    #[serde(default)]
    expect: Expect,
}

/// A parsed case ready to run.
#[derive(Clone)]
struct Job {
    file: PathBuf,
    /// The file's name as shown (relative to the working directory when possible).
    shown: String,
    case: Case,
    now: chrono::DateTime<chrono::Utc>,
    seed: u64,
    /// Index into the configuration's endpoints.
    endpoint: Option<usize>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The closest of `options` to `word` (a small edit distance), for "did you mean".
fn did_you_mean<'a>(word: &str, options: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().chars().collect();
    options
        .map(|o| {
            let c: Vec<char> = o.to_lowercase().chars().collect();
            let mut prev: Vec<usize> = (0..=c.len()).collect();
            for (i, a) in w.iter().enumerate() {
                let mut cur = vec![i + 1];
                for (j, b) in c.iter().enumerate() {
                    let sub = prev[j] + usize::from(a != b);
                    cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
                }
                prev = cur;
            }
            (prev[c.len()], o)
        })
        .filter(|(d, o)| *d <= (o.chars().count() / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

const FIELDS: [&str; 18] = [
    "name",
    "endpoint",
    "template",
    "source",
    "context",
    "method",
    "query",
    "headers",
    "body",
    "token",
    "memory",
    "records",
    "now",
    "seed",
    "webhook",
    "expect",
    "status",
    "content_type",
];

/// Turns a toml/serde error into `FILE:LINE:COL: message` (+ a did-you-mean for a field).
fn toml_error(shown: &str, text: &str, e: &toml::de::Error) -> Usage {
    let (line, col) = match e.span() {
        Some(s) => {
            let line = line_of(text, s.start);
            let start = text[..s.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            (line, s.start - start + 1)
        }
        None => (1, 1),
    };
    let msg = e.message().trim().to_string();
    let mut hint = String::new();
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some(field) = rest.split('`').next() {
            let extra = [
                "json",
                "body_contains",
                "steps",
                "output",
                "snapshot",
                "url",
                "data",
            ];
            if let Some(m) = did_you_mean(field, FIELDS.iter().chain(extra.iter()).copied()) {
                hint = format!(" (did you mean `{m}`?)");
            }
        }
    }
    Usage(format!("{shown}:{line}:{col}: {msg}{hint}"))
}

fn parse_now(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&chrono::Utc))
}

/// Reads one case file into jobs, checking endpoint names against `config`.
fn read_cases(path: &Path, config: &Config) -> Result<Vec<Job>, Usage> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Usage(format!("{shown}: cannot read the case file: {e}")))?;
    let file: CaseFile = toml::from_str(&text).map_err(|e| toml_error(&shown, &text, &e))?;
    let mut jobs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for spanned in file.case {
        let line = line_of(&text, spanned.span().start);
        let case = spanned.into_inner();
        if !names.insert(case.name.clone()) {
            return Err(Usage(format!(
                "{shown}:{line}: two cases are named {:?} (names must be unique: they name the snapshot files)",
                case.name
            )));
        }
        if case.name.trim().is_empty() || case.name.contains(['/', '\\']) {
            return Err(Usage(format!(
                "{shown}:{line}: a case name must be non-empty and hold no `/` or `\\`"
            )));
        }
        let now_text = case
            .now
            .clone()
            .or(file.defaults.now.clone())
            .unwrap_or_else(|| DEFAULT_NOW.to_string());
        let now = parse_now(&now_text).ok_or_else(|| {
            Usage(format!(
                "{shown}:{line}: `now` must be an RFC 3339 instant such as 2026-03-01T09:00:00Z, got {now_text:?}"
            ))
        })?;
        let seed = case.seed.or(file.defaults.seed).unwrap_or(0);
        let endpoint = match (&case.endpoint, &case.template, &case.source) {
            (Some(e), None, None) => {
                let want = e.get_ref();
                let at = line_of(&text, e.span().start);
                let found = config.endpoints.iter().position(|ep| {
                    ep.name == *want || format!("{}/{}", ep.first_hash, ep.second_hash) == *want
                });
                match found {
                    Some(i) => Some(i),
                    None => {
                        let hint =
                            did_you_mean(want, config.endpoints.iter().map(|ep| ep.name.as_str()))
                                .map(|m| format!(" (did you mean {m:?}?)"))
                                .unwrap_or_default();
                        return Err(Usage(format!(
                            "{shown}:{at}: case {:?}: no endpoint named {want:?} in {}{hint}",
                            case.name,
                            config.path.display()
                        )));
                    }
                }
            }
            (None, Some(t), None) => {
                let at = line_of(&text, t.span().start);
                let base = config
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let want = t.get_ref();
                if !base.join(want).is_file() {
                    let dir = base.join(want).parent().map(Path::to_path_buf);
                    let names: Vec<String> = dir
                        .and_then(|d| std::fs::read_dir(d).ok())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter_map(|e| e.file_name().to_str().map(str::to_string))
                        .collect();
                    let file = Path::new(want)
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or(want);
                    let hint = did_you_mean(file, names.iter().map(String::as_str))
                        .map(|m| format!(" (did you mean {m:?}?)"))
                        .unwrap_or_default();
                    return Err(Usage(format!(
                        "{shown}:{at}: case {:?}: no template {want:?} beside {}{hint}",
                        case.name,
                        config.path.display()
                    )));
                }
                None
            }
            (None, None, Some(_)) => None,
            _ => {
                return Err(Usage(format!(
                "{shown}:{line}: case {:?}: give exactly one of `endpoint`, `template` or `source`",
                case.name
            )))
            }
        };
        jobs.push(Job {
            file: path.to_path_buf(),
            shown: shown.clone(),
            case,
            now,
            seed,
            endpoint,
        });
    }
    Ok(jobs)
}

/// Every `*.cases.toml` under `dir`, sorted.
fn find_case_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "snapshots") {
                continue;
            }
            find_case_files(&p, out)?;
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.ends_with(".cases.toml"))
        {
            out.push(p);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Running one case

/// Records shared-store writes (the snapshot lists them).
struct RecordingStore {
    inner: Arc<dyn SharedStore>,
    writes: Mutex<Vec<String>>,
}

impl SharedStore for RecordingStore {
    fn get(&self, name: &str) -> Option<Value> {
        self.inner.get(name)
    }
    fn set(&self, name: &str, value: Value, ttl: Duration) {
        if let Ok(mut w) = self.writes.lock() {
            if ttl.is_zero() {
                w.push(format!("remove {name}"));
            } else {
                w.push(format!("set {name} = {}", value.to_json()));
            }
        }
        self.inner.set(name, value, ttl)
    }
    fn increment(&self, name: &str, by: i64) -> Result<i64, crate::Error> {
        let r = self.inner.increment(name, by);
        if let (Ok(mut w), Ok(n)) = (self.writes.lock(), &r) {
            w.push(format!("increment {name} by {by} = {n}"));
        }
        r
    }
}

/// One outbound request as a case saw it.
struct Outbound {
    text: String,
    matched: bool,
}

/// The case's webhook stubs, matched in order; every request is recorded.
struct Stubs {
    stubs: Vec<Stub>,
    seen: Mutex<Vec<Outbound>>,
}

fn wildcard(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

impl Transport for Stubs {
    fn send(&self, req: Request<Full<Bytes>>, max_body: usize) -> Sending<'_> {
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let url = parts.uri.to_string();
            let mut text = format!("{} {url}\n", parts.method);
            let mut names: Vec<_> = parts.headers.iter().collect();
            names.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
            for (k, v) in names {
                let shown = if is_credential(k.as_str()) {
                    "(hidden)".to_string()
                } else {
                    String::from_utf8_lossy(v.as_bytes()).into_owned()
                };
                let _ = writeln!(text, "{k}: {shown}");
            }
            if !body.is_empty() {
                let _ = write!(text, "\n{}\n", pretty_body(&body));
            }
            let stub = self.stubs.iter().find(|s| {
                wildcard(&s.url, &url)
                    && s.method
                        .as_ref()
                        .is_none_or(|m| m.eq_ignore_ascii_case(parts.method.as_str()))
            });
            if let Ok(mut seen) = self.seen.lock() {
                seen.push(Outbound {
                    text,
                    matched: stub.is_some(),
                });
            }
            let Some(stub) = stub else {
                return Err("no [[case.webhook]] stub matches this request"
                    .to_string()
                    .into());
            };
            let status = StatusCode::from_u16(stub.status)
                .map_err(|_| format!("stub status {} is not valid", stub.status))?;
            let mut headers = HeaderMap::new();
            for (k, v) in &stub.headers {
                if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), v.parse()) {
                    headers.insert(k, v);
                }
            }
            // The step's response cap holds for stubs as for the network.
            if stub.body.len() > max_body {
                return Err(SendError::TooLarge(status, headers));
            }
            Ok((status, headers, Bytes::from(stub.body.clone())))
        })
    }
}

fn pretty_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) if !text.trim().is_empty() => {
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string())
        }
        _ => text.trim_end().to_string(),
    }
}

/// What a case produced.
#[derive(Default)]
struct Observed {
    status: u16,
    headers: Vec<(String, String)>,
    content_type: String,
    body: String,
    /// `(id, kind, status)` of each step that ran.
    steps: Vec<(String, String, String)>,
    outbound: Vec<Outbound>,
    writes: Vec<String>,
    memory: BTreeMap<String, serde_json::Value>,
    /// Problems found while running (unmatched webhook, unfinished workflow).
    problems: Vec<String>,
}

fn toml_to_json(v: &toml::Value) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}

fn run_endpoint(config_path: &Path, job: &Job) -> Result<Observed, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async {
        let origin = tokio::time::Instant::now();
        let _clock = crate::clock::freeze(
            job.now,
            Box::new(move || tokio::time::Instant::now().saturating_duration_since(origin)),
            Some(job.seed),
        );
        serve_case(config_path, job).await
    })
}

async fn serve_case(config_path: &Path, job: &Job) -> Result<Observed, String> {
    let case = &job.case;
    let backend = StateSpec::Memory.open(crate::state::Durability::Normal)?;
    let store = Arc::new(RecordingStore {
        inner: backend.store(),
        writes: Mutex::new(Vec::new()),
    });
    let records = records_path(job);
    let config = load_config_with_records(config_path, store.clone(), records.as_deref())
        .map_err(|e| e.to_string())?;
    let index = job.endpoint.ok_or("not an endpoint case")?;
    let ep = config
        .endpoints
        .get(index)
        .cloned()
        .ok_or("endpoint vanished")?;
    for (k, v) in case.memory.iter().flatten() {
        store.inner.set(k, Value::from(toml_to_json(v)), PRESET_TTL);
    }
    let stubs = Arc::new(Stubs {
        stubs: case.webhook.clone(),
        seen: Mutex::new(Vec::new()),
    });
    let client = HttpClient::with_transport(stubs.clone());
    let mut uri = ep.path();
    if let Some(q) = case.query.as_deref().filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(q.trim_start_matches('?'));
    }
    let mut builder = Request::builder()
        .method(case.method.as_deref().unwrap_or("GET"))
        .uri(uri);
    for (k, v) in &case.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| format!("invalid value for header {k:?}"))?;
        builder = builder.header(name, value);
    }
    match &case.token {
        None => {}
        Some(TokenSpec::Raw(t)) => builder = builder.header(AUTHORIZATION, format!("Bearer {t}")),
        Some(TokenSpec::Signed { data, ttl }) => {
            let Some((key, secret)) = &ep.auth else {
                return Err(format!(
                    "endpoint {:?} has no authentication: give the token as a string to send one anyway",
                    ep.name
                ));
            };
            let render = |t: &crate::Template| {
                t.render_value(
                    &Value::empty_map(),
                    RenderOptions {
                        allow_env: true,
                        ..RenderOptions::default()
                    },
                )
                .map_err(|e| {
                    format!(
                        "the endpoint's {} could not be rendered: {}",
                        t.name(),
                        e.kind().as_str()
                    )
                })
            };
            let token = super::auth::sign(
                &render(key)?,
                &render(secret)?,
                "HS256",
                ttl.unwrap_or(3600),
                Some(toml_to_json(data)),
            )
            .map_err(|e| e.to_string())?;
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
    }
    let body = Bytes::from(case.body.clone().unwrap_or_default());
    let req = builder
        .body(Full::new(body))
        .map_err(|e| format!("invalid request: {e}"))?;
    let (state, _stop) = super::server::State::detached(config, backend.clone(), client);
    let handled = handler::handle(state.clone(), req, Role::Public).await;
    let run_id = handled.run_id.clone();
    let response = handled.into_response();
    let mut obs = Observed {
        status: response.status().as_u16(),
        ..Observed::default()
    };
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(k, _)| !HIDDEN_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    headers.sort();
    obs.content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    obs.headers = headers;
    let collected = tokio::time::timeout(MAX_VIRTUAL, response.into_body().collect()).await;
    match collected {
        Ok(Ok(c)) => obs.body = String::from_utf8_lossy(&c.to_bytes()).into_owned(),
        Ok(Err(never)) => match never {},
        Err(_) => obs
            .problems
            .push("the response body did not end within a day of frozen time".into()),
    }
    // Post-answer and async work runs to the end before the case is judged.
    let deadline = tokio::time::Instant::now() + MAX_VIRTUAL;
    if let Some(id) = &run_id {
        loop {
            let g = state.runner.gauges();
            let done = match backend.get_run(id).await {
                Ok(rec) => matches!(
                    rec.status,
                    RunStatus::Succeeded | RunStatus::Failed | RunStatus::Interrupted
                ),
                Err(_) => g.queued + g.running + g.waiting == 0,
            };
            if done {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                obs.problems
                    .push("the workflow did not finish within a day of frozen time".into());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Ok(rec) = backend.get_run(id).await {
            obs.steps = rec
                .steps
                .iter()
                .map(|s| (s.id.clone(), s.kind.clone(), s.status.as_str().to_string()))
                .collect();
        }
    }
    obs.outbound = stubs
        .seen
        .lock()
        .map(|mut s| s.drain(..).collect())
        .unwrap_or_default();
    for o in &obs.outbound {
        if !o.matched {
            obs.problems.push(format!(
                "an outbound webhook request matched no [[case.webhook]] stub:\n{}",
                o.text.trim_end()
            ));
        }
    }
    obs.writes = store.writes.lock().map(|w| w.clone()).unwrap_or_default();
    for k in case.expect.memory.iter().flat_map(|m| m.keys()) {
        let v = store
            .get(k)
            .map_or(serde_json::Value::Null, |v| v.to_json());
        obs.memory.insert(k.clone(), v);
    }
    Ok(obs)
}

/// A case's own `records` file, relative to the case file.
fn records_path(job: &Job) -> Option<PathBuf> {
    let r = job.case.records.as_ref()?;
    Some(job.file.parent().unwrap_or(Path::new(".")).join(r))
}

fn run_source(config_path: &Path, job: &Job) -> Result<Observed, String> {
    let case = &job.case;
    let source = match (&case.source, &case.template) {
        (Some(s), _) => s.clone(),
        (None, Some(t)) => {
            let path = config_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(t.get_ref());
            std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read the template {}: {e}", path.display()))?
        }
        (None, None) => String::new(),
    };
    let start = job.now;
    let _clock = crate::clock::freeze(start, Box::new(|| Duration::ZERO), Some(job.seed));
    // The configuration's engine: its time zone, snippets and records (or the case's own).
    let store: Arc<dyn SharedStore> = Arc::new(crate::host::MemoryStore::new());
    for (k, v) in case.memory.iter().flatten() {
        store.set(k, Value::from(toml_to_json(v)), PRESET_TTL);
    }
    let config = load_config_with_records(config_path, store, records_path(job).as_deref())
        .map_err(|e| e.to_string())?;
    let engine = config.engine.clone();
    let tpl = engine
        .compile(&case.name, &source)
        .map_err(|e| format!("the template does not compile: {e}"))?;
    let ctx = serde_json::to_value(case.context.clone().unwrap_or_default())
        .map_err(|e| e.to_string())?;
    let out = tpl
        .render(&ctx)
        .map_err(|e| format!("the template failed to render: {e}"))?;
    Ok(Observed {
        body: out,
        ..Observed::default()
    })
}

// ---------------------------------------------------------------------------------------------
// Judging

/// The snapshot text of an observation.
fn snapshot_text(job: &Job, o: &Observed) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# flexscript test snapshot: {}", job.case.name);
    if job.endpoint.is_none() {
        let _ = writeln!(s, "\n## output\n{}", o.body);
        return s;
    }
    let _ = writeln!(s, "\n## response\nstatus: {}", o.status);
    for (k, v) in &o.headers {
        let _ = writeln!(s, "{k}: {v}");
    }
    if !o.body.is_empty() {
        let _ = writeln!(s, "\n{}", pretty_body(o.body.as_bytes()));
    }
    if !o.steps.is_empty() {
        let mut steps: Vec<_> = o.steps.iter().collect();
        steps.sort();
        let _ = writeln!(s, "\n## steps");
        for (id, kind, status) in steps {
            let _ = writeln!(s, "{id} ({kind}): {status}");
        }
    }
    if !o.outbound.is_empty() {
        let _ = writeln!(s, "\n## outbound webhooks");
        for w in &o.outbound {
            let _ = writeln!(s, "{}", w.text.trim_end());
        }
    }
    if !o.writes.is_empty() {
        let _ = writeln!(s, "\n## store writes");
        let mut writes = o.writes.clone();
        writes.sort();
        for w in writes {
            let _ = writeln!(s, "{w}");
        }
    }
    s
}

fn diff(expected: &str, actual: &str, color: bool) -> String {
    let d = similar::TextDiff::from_lines(expected, actual);
    let text = d
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string();
    if !color {
        return text;
    }
    text.lines()
        .map(|l| {
            if l.starts_with("+++") || l.starts_with("---") {
                format!("\x1b[1m{l}\x1b[0m")
            } else if l.starts_with('+') {
                format!("\x1b[32m{l}\x1b[0m")
            } else if l.starts_with('-') {
                format!("\x1b[31m{l}\x1b[0m")
            } else if l.starts_with("@@") {
                format!("\x1b[36m{l}\x1b[0m")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn snapshot_path(job: &Job) -> PathBuf {
    let dir = job.file.parent().unwrap_or(Path::new("."));
    let file = job
        .file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("cases");
    let stem = file.strip_suffix(".toml").unwrap_or(file);
    dir.join("snapshots")
        .join(stem)
        .join(format!("{}.snap", job.case.name))
}

enum Verdict {
    Ok,
    New,
    Failed(String),
}

fn judge(job: &Job, o: &Observed, update: bool, color: bool) -> Verdict {
    let e = &job.case.expect;
    let mut fails: Vec<String> = o.problems.clone();
    if let Some(s) = e.status {
        if s != o.status {
            fails.push(format!("status: expected {s}, got {}", o.status));
        }
    }
    if let Some(ct) = &e.content_type {
        let got = o.content_type.split(';').next().unwrap_or("").trim();
        if !got.eq_ignore_ascii_case(ct.split(';').next().unwrap_or("").trim()) {
            fails.push(format!(
                "content type: expected {ct:?}, got {:?}",
                o.content_type
            ));
        }
    }
    if let Some(j) = &e.json {
        let want = toml_to_json(j);
        match serde_json::from_str::<serde_json::Value>(&o.body) {
            Ok(got) if json_eq(&want, &got) => {}
            Ok(got) => fails.push(format!(
                "json body differs:\n{}",
                diff(&pretty(&want), &pretty(&got), color)
            )),
            Err(_) => fails.push(format!("json: the body is not JSON:\n{}", o.body)),
        }
    }
    if let Some(b) = &e.body {
        if *b != o.body {
            fails.push(format!("body differs:\n{}", diff(b, &o.body, color)));
        }
    }
    if let Some(out) = &e.output {
        if *out != o.body {
            fails.push(format!("output differs:\n{}", diff(out, &o.body, color)));
        }
    }
    if let Some(c) = &e.body_contains {
        if !o.body.contains(c.as_str()) {
            fails.push(format!("body does not contain {c:?}; body:\n{}", o.body));
        }
    }
    for (k, v) in e.headers.iter().flatten() {
        let got = o
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str());
        if got != Some(v.as_str()) {
            fails.push(format!("header {k}: expected {v:?}, got {got:?}"));
        }
    }
    if let Some(steps) = &e.steps {
        let mut want: Vec<&str> = steps.iter().map(String::as_str).collect();
        let mut got: Vec<&str> = o.steps.iter().map(|(id, _, _)| id.as_str()).collect();
        want.sort_unstable();
        got.sort_unstable();
        if want != got {
            fails.push(format!("steps that ran: expected {want:?}, got {got:?}"));
        }
    }
    for (k, v) in e.memory.iter().flatten() {
        let want = toml_to_json(v);
        let got = o.memory.get(k).cloned().unwrap_or(serde_json::Value::Null);
        if !json_eq(&want, &got) {
            fails.push(format!("memory {k}: expected {want}, got {got}"));
        }
    }
    let mut new = false;
    if e.snapshot {
        let path = snapshot_path(job);
        let text = snapshot_text(job, o);
        match std::fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(old) if old == text => {}
                Ok(_) if update => {
                    if let Err(err) = std::fs::write(&path, &text) {
                        fails.push(format!("cannot write {}: {err}", path.display()));
                    }
                }
                Ok(old) if !old.starts_with("# flexscript test snapshot: ") => fails.push(format!(
                    "snapshot {} is corrupt (no `# flexscript test snapshot:` header); fix it or delete it and run with --update",
                    path.display()
                )),
                Ok(old) => fails.push(format!(
                    "snapshot {} differs (run with --update to accept):\n{}",
                    path.display(),
                    diff(&old, &text, color)
                )),
                Err(_) => fails.push(format!(
                    "snapshot {} is corrupt (not UTF-8 text); delete it and run with --update",
                    path.display()
                )),
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if update {
                    let written = path
                        .parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|_| std::fs::write(&path, &text));
                    match written {
                        Ok(()) => new = true,
                        Err(err) => fails.push(format!("cannot write {}: {err}", path.display())),
                    }
                } else {
                    fails.push(format!(
                        "snapshot {} is missing; --update would write:\n{text}",
                        path.display()
                    ));
                }
            }
            Err(err) => fails.push(format!(
                "snapshot {} cannot be read: {err}",
                path.display()
            )),
        }
    }
    if !fails.is_empty() {
        Verdict::Failed(fails.join("\n"))
    } else if new {
        Verdict::New
    } else {
        Verdict::Ok
    }
}

/// Pretty JSON with object keys sorted (both sides of a `json` diff line up).
fn pretty(v: &serde_json::Value) -> String {
    fn sorted(v: &serde_json::Value) -> serde_json::Value {
        match v {
            serde_json::Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                serde_json::Value::Object(
                    keys.into_iter()
                        .map(|k| (k.clone(), sorted(&m[k])))
                        .collect(),
                )
            }
            serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(v)).unwrap_or_default() + "\n"
}

/// JSON equality where integers and floats of the same value are equal (TOML `7` vs `7.0`).
fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (a, b) {
        (J::Number(x), J::Number(y)) => x.as_f64() == y.as_f64(),
        (J::Array(x), J::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (J::Object(x), J::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

// ---------------------------------------------------------------------------------------------
// The command

struct Outcome {
    job: Job,
    verdict: Verdict,
    seconds: f64,
}

fn junit(outcomes: &[Outcome]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .chars()
            .filter(|c| *c == '\n' || *c == '\t' || !c.is_control())
            .collect::<String>()
    };
    let failures = outcomes
        .iter()
        .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
        .count();
    let total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"flexscript test\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">",
        outcomes.len()
    );
    let mut files: Vec<&str> = outcomes.iter().map(|o| o.job.shown.as_str()).collect();
    files.dedup();
    for f in files {
        let mine: Vec<&Outcome> = outcomes.iter().filter(|o| o.job.shown == f).collect();
        let fails = mine
            .iter()
            .filter(|o| matches!(o.verdict, Verdict::Failed(_)))
            .count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\">",
            esc(f),
            mine.len()
        );
        for o in mine {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                esc(f),
                esc(&o.job.case.name),
                o.seconds
            );
            match &o.verdict {
                Verdict::Failed(m) => {
                    let first = m.lines().next().unwrap_or("failed");
                    let _ = writeln!(
                        x,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        esc(first),
                        esc(m)
                    );
                }
                _ => x.push_str("/>\n"),
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// Runs `flexscript test`; returns the exit code (0 all pass, 1 a failure, 2 usage).
pub fn run(args: &Args) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(Usage(m)) => {
            eprintln!("error: {m}");
            2
        }
    }
}

fn run_inner(args: &Args) -> Result<u8, Usage> {
    let config = super::config::load_config(&args.config)
        .map_err(|e| Usage(format!("{}: {e}", args.config.display())))?;
    let mut files = Vec::new();
    let cases = if args.cases.is_empty() {
        let dir = args.config.parent().unwrap_or(Path::new(".")).join("tests");
        vec![dir]
    } else {
        args.cases.clone()
    };
    for c in &cases {
        if c.is_dir() {
            find_case_files(c, &mut files)
                .map_err(|e| Usage(format!("{}: cannot read the folder: {e}", c.display())))?;
        } else if c.exists() {
            files.push(c.clone());
        } else {
            return Err(Usage(format!("{}: no such file or folder", c.display())));
        }
    }
    if files.is_empty() {
        return Err(Usage(format!(
            "no *.cases.toml files found in {}",
            cases
                .iter()
                .map(|c| c.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut jobs = Vec::new();
    for f in &files {
        jobs.extend(read_cases(f, &config)?);
    }
    if let Some(f) = &args.filter {
        jobs.retain(|j| j.case.name.contains(f.as_str()));
    }
    let color = std::io::stdout().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let jobs_n = args.jobs.max(1).min(jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..jobs_n {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { break };
                let started = std::time::Instant::now();
                let observed = if job.endpoint.is_some() {
                    run_endpoint(&args.config, job)
                } else {
                    run_source(&args.config, job)
                };
                let verdict = match observed {
                    Ok(o) => judge(job, &o, args.update, color),
                    Err(e) => Verdict::Failed(e),
                };
                let outcome = Outcome {
                    job: job.clone(),
                    verdict,
                    seconds: started.elapsed().as_secs_f64(),
                };
                if let Ok(mut r) = results.lock() {
                    r[i] = Some(outcome);
                }
            });
        }
    });
    let outcomes: Vec<Outcome> = results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    let (mut passed, mut failed, mut new) = (0, 0, 0);
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    for o in &outcomes {
        let label = match o.verdict {
            Verdict::Ok => {
                passed += 1;
                paint("32", "ok")
            }
            Verdict::New => {
                passed += 1;
                new += 1;
                paint("33", "new snapshot")
            }
            Verdict::Failed(_) => {
                failed += 1;
                paint("31", "FAILED")
            }
        };
        println!("{} :: {} ... {label}", o.job.shown, o.job.case.name);
    }
    for o in &outcomes {
        if let Verdict::Failed(m) = &o.verdict {
            println!(
                "\n---- {} :: {} ----\n{}",
                o.job.shown,
                o.job.case.name,
                m.trim_end()
            );
        }
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, junit(&outcomes)).map_err(|e| {
            Usage(format!(
                "{}: cannot write the JUnit file: {e}",
                path.display()
            ))
        })?;
    }
    let mut last = format!("\n{passed} passed, {failed} failed");
    if new > 0 {
        let _ = write!(last, ", {new} new");
    }
    println!("{last}");
    Ok(if failed > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_suggestions() {
        assert!(wildcard(
            "https://api.example.com/orders*",
            "https://api.example.com/orders/9"
        ));
        assert!(wildcard("*://a/*/c", "http://a/b/c"));
        assert!(!wildcard("https://a/x", "https://a/y"));
        assert_eq!(
            did_you_mean("stauts", ["status", "steps"].into_iter()),
            Some("status")
        );
        assert_eq!(did_you_mean("zzzzzzzz", ["status"].into_iter()), None);
        let plain = diff("a\nb\n", "a\nc\n", false);
        assert!(
            plain.contains("-b\n+c\n") && !plain.contains('\x1b'),
            "{plain}"
        );
        let coloured = diff("a\nb\n", "a\nc\n", true);
        assert!(coloured.contains("\x1b[31m-b\x1b[0m") && coloured.contains("\x1b[32m+c"));
        assert!(is_credential("Authorization") && is_credential("webhook-signature"));
        assert!(is_credential("X-Api-Key") && is_credential("x-auth-token"));
        assert!(!is_credential("idempotency-key") && !is_credential("content-type"));
    }
}
