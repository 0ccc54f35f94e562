//! The server's Prometheus metrics (docs/operations.md lists them with example alerts), built on
//! the `prometheus-client` crate and served by `GET /metrics` in the Prometheus text format.
//!
//! Every name starts with `flexscript_`. Label values come only from the configuration (endpoint
//! names), from fixed sets (run status, step type, webhook status class) or from HTTP status
//! codes, so the number of series stays bounded whatever clients send.
//!
//! The request path must stay cheap: an endpoint's handles are resolved once (see
//! [`Metrics::endpoint`]) and kept with the loaded endpoint, so counting a request is an atomic
//! add and one histogram observation, without a label look-up or an allocation for the usual
//! statuses.

use crate::host::SharedStore;
use crate::state::{
    Backend, Retention, RetryFrom, RunEvent, RunFilter, RunPage, RunRecord, StateError, StateResult,
};
use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// The `Content-Type` of the `/metrics` answer (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// The `endpoint` label of requests that reached no endpoint (unknown paths, the listing, the
/// health, readiness, metrics and admin routes).
pub const NO_ENDPOINT: &str = "-";

/// Seconds, for request latencies (0.5 ms … 30 s).
const REQUEST_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Seconds, for whole runs (1 ms … 1 day: runs may wait on long delays).
const RUN_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0,
    86400.0,
];
/// Seconds, for journal commits (0.1 ms … 5 s).
const COMMIT_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Final status of a run this process finished, as counted by `flexscript_runs_total`
/// (`interrupted` runs are marked by the journal at a restart, not finished by a process).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// Every step ran.
    Succeeded,
    /// A step failed.
    Failed,
}

impl RunEnd {
    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Succeeded => "succeeded",
            RunEnd::Failed => "failed",
        }
    }
}

/// A state counted by the `flexscript_runs_active` gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Waiting for a worker.
    Queued,
    /// On a worker.
    Running,
    /// Waiting on a step's delay.
    Waiting,
    /// Accepted past the in-memory queue bound: waiting only in the journal.
    Backlog,
}

impl RunState {
    fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Waiting => "waiting",
            RunState::Backlog => "backlog",
        }
    }
}

/// Step types, as they appear in the `type` label of `flexscript_step_failures_total`.
pub const STEP_TYPES: [&str; 7] = [
    "condition",
    "store",
    "respond",
    "emit",
    "webhook",
    "set_memory",
    "log",
];

/// Status classes of `flexscript_webhook_calls_total` (`error`: no HTTP response).
const WEBHOOK_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: Arc<str>,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    endpoint: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    endpoint: Arc<str>,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of one server (shared by its listeners, kept across configuration reloads).
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<EndpointLabel>,
    runs: Family<RunLabels, Counter>,
    run_duration: HistogramFamily<EndpointLabel>,
    global: Arc<Global>,
    /// The handles of [`NO_ENDPOINT`].
    no_endpoint: EndpointMetrics,
}

/// The server-wide series without an endpoint label: run states, step failures, webhook calls,
/// the journal and the state backend.
pub struct Global {
    queued: Gauge,
    running: Gauge,
    waiting: Gauge,
    backlog: Gauge,
    step_failures: Family<TypeLabel, Counter>,
    webhook_calls: [Counter; WEBHOOK_CLASSES.len()],
    journal_commit: Histogram,
    backend_errors: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Statuses counted through a pre-resolved handle (others go through a label look-up).
const USUAL_STATUSES: [u16; 16] = [
    200, 201, 202, 204, 302, 400, 401, 403, 404, 405, 408, 413, 500, 502, 503, 504,
];

/// The handles of one endpoint's series, resolved once.
#[derive(Clone)]
pub struct EndpointMetrics {
    name: Arc<str>,
    requests: Family<RequestLabels, Counter>,
    by_status: Arc<[OnceLock<Counter>; USUAL_STATUSES.len()]>,
    request_duration: Histogram,
    run_duration: Histogram,
    succeeded: Counter,
    failed: Counter,
    global: Arc<Global>,
}

impl std::fmt::Debug for EndpointMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointMetrics")
            .field("endpoint", &self.name)
            .finish_non_exhaustive()
    }
}

impl EndpointMetrics {
    /// Counts one answered request and its duration.
    pub fn request(&self, status: u16, elapsed: Duration) {
        self.request_duration.observe(elapsed.as_secs_f64());
        match USUAL_STATUSES.iter().position(|s| *s == status) {
            Some(i) => {
                self.by_status[i].get_or_init(|| self.counter(status)).inc();
            }
            None => {
                self.requests
                    .get_or_create(&RequestLabels {
                        endpoint: self.name.clone(),
                        status,
                    })
                    .inc();
            }
        }
    }

    fn counter(&self, status: u16) -> Counter {
        self.requests.get_or_create_owned(&RequestLabels {
            endpoint: self.name.clone(),
            status,
        })
    }

    /// The server-wide series.
    pub fn global(&self) -> &Global {
        &self.global
    }

    /// Counts a finished run of this endpoint and its duration.
    pub fn run_finished(&self, end: RunEnd, elapsed: Duration) {
        self.run_duration.observe(elapsed.as_secs_f64());
        match end {
            RunEnd::Succeeded => self.succeeded.inc(),
            RunEnd::Failed => self.failed.inc(),
        };
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric (all present from the first scrape, at zero).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("flexscript");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "HTTP requests answered, by endpoint name (\"-\" for none) and status",
            requests.clone(),
        );
        let request_duration: HistogramFamily<EndpointLabel> =
            Family::new_with_constructor(|| Histogram::new(REQUEST_BUCKETS));
        registry.register_with_unit(
            "request_duration",
            "Time from receiving a request to handing its answer to the connection",
            Unit::Seconds,
            request_duration.clone(),
        );
        let runs = Family::<RunLabels, Counter>::default();
        registry.register(
            "runs",
            "Workflow runs finished by this process, by endpoint name and final status (succeeded, failed)",
            runs.clone(),
        );
        let run_duration: HistogramFamily<EndpointLabel> =
            Family::new_with_constructor(|| Histogram::new(RUN_BUCKETS));
        registry.register_with_unit(
            "run_duration",
            "Time from the start (or resumption) of a run by this process to its end, delays included",
            Unit::Seconds,
            run_duration.clone(),
        );
        let active = Family::<StateLabel, Gauge>::default();
        registry.register(
            "runs_active",
            "Runs of this process not finished yet, by state (queued for a worker, running, waiting on a delay, backlog: accepted past the in-memory queue bound and waiting only in the journal)",
            active.clone(),
        );
        let gauge = |s: RunState| active.get_or_create_owned(&StateLabel { state: s.as_str() });
        let (queued, running, waiting, backlog) = (
            gauge(RunState::Queued),
            gauge(RunState::Running),
            gauge(RunState::Waiting),
            gauge(RunState::Backlog),
        );
        let step_failures = Family::<TypeLabel, Counter>::default();
        registry.register(
            "step_failures",
            "Workflow steps that failed (their branch stopped), by step type",
            step_failures.clone(),
        );
        for t in STEP_TYPES {
            let _ = step_failures.get_or_create_owned(&TypeLabel { r#type: t });
        }
        let webhook = Family::<ClassLabel, Counter>::default();
        registry.register(
            "webhook_calls",
            "Webhook steps' calls by the status class of their final attempt (error: no response)",
            webhook.clone(),
        );
        let webhook_calls =
            WEBHOOK_CLASSES.map(|class| webhook.get_or_create_owned(&ClassLabel { class }));
        let journal_commit = Histogram::new(COMMIT_BUCKETS);
        registry.register_with_unit(
            "journal_commit",
            "Time from issuing a run journal write to its commit (group commit included)",
            Unit::Seconds,
            journal_commit.clone(),
        );
        let backend_errors = Counter::default();
        registry.register(
            "backend_errors",
            "State backend operations that failed (backend unavailable or a record unreadable)",
            backend_errors.clone(),
        );
        let global = Arc::new(Global {
            queued,
            running,
            waiting,
            backlog,
            step_failures,
            webhook_calls,
            journal_commit,
            backend_errors,
        });
        let no_endpoint = resolve(
            NO_ENDPOINT,
            &requests,
            &request_duration,
            &runs,
            &run_duration,
            &global,
        );
        Metrics {
            registry,
            requests,
            request_duration,
            runs,
            run_duration,
            global,
            no_endpoint,
        }
    }

    /// The handles of endpoint `name` (resolve once, keep with the endpoint).
    pub fn endpoint(&self, name: &str) -> EndpointMetrics {
        resolve(
            name,
            &self.requests,
            &self.request_duration,
            &self.runs,
            &self.run_duration,
            &self.global,
        )
    }

    /// The handles for requests that reached no endpoint.
    pub fn no_endpoint(&self) -> &EndpointMetrics {
        &self.no_endpoint
    }

    /// The server-wide series.
    pub fn global(&self) -> &Global {
        &self.global
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail; an encoder error would be a bug in the crate, and
        // leaves a partial text rather than a panic.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

impl Global {
    /// Sets the number of runs in `state` (counted by the runner, read at each scrape).
    pub fn set_active(&self, state: RunState, n: usize) {
        self.gauge(state).set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    fn gauge(&self, state: RunState) -> &Gauge {
        match state {
            RunState::Queued => &self.queued,
            RunState::Running => &self.running,
            RunState::Waiting => &self.waiting,
            RunState::Backlog => &self.backlog,
        }
    }

    /// A step of type `step_type` (one of [`STEP_TYPES`]) failed.
    pub fn step_failed(&self, step_type: &'static str) {
        self.step_failures
            .get_or_create(&TypeLabel { r#type: step_type })
            .inc();
    }

    /// A webhook call ended with HTTP `status` (0: no response).
    pub fn webhook_call(&self, status: u16) {
        let i = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            500..=599 => 4,
            _ => 5,
        };
        self.webhook_calls[i].inc();
    }

    /// One journal commit took `elapsed`.
    pub fn journal_commit(&self, elapsed: Duration) {
        self.journal_commit.observe(elapsed.as_secs_f64());
    }

    /// A state backend operation failed.
    pub fn backend_error(&self) {
        self.backend_errors.inc();
    }
}

fn resolve(
    name: &str,
    requests: &Family<RequestLabels, Counter>,
    request_duration: &HistogramFamily<EndpointLabel>,
    runs: &Family<RunLabels, Counter>,
    run_duration: &HistogramFamily<EndpointLabel>,
    global: &Arc<Global>,
) -> EndpointMetrics {
    let name: Arc<str> = Arc::from(name);
    let label = EndpointLabel {
        endpoint: name.clone(),
    };
    let run = |end: RunEnd| {
        runs.get_or_create_owned(&RunLabels {
            endpoint: name.clone(),
            status: end.as_str(),
        })
    };
    EndpointMetrics {
        requests: requests.clone(),
        by_status: Arc::new(std::array::from_fn(|_| OnceLock::new())),
        request_duration: request_duration.get_or_create_owned(&label),
        run_duration: run_duration.get_or_create_owned(&label),
        succeeded: run(RunEnd::Succeeded),
        failed: run(RunEnd::Failed),
        global: global.clone(),
        name,
    }
}

/// Where a loaded endpoint keeps its handles (filled on its first request; a reload builds new
/// endpoints and so resolves again, to the same series when the name is unchanged).
#[derive(Default)]
pub struct MetricsSlot(OnceLock<EndpointMetrics>);

impl Clone for MetricsSlot {
    fn clone(&self) -> Self {
        MetricsSlot::default()
    }
}

impl std::fmt::Debug for MetricsSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsSlot").finish_non_exhaustive()
    }
}

impl MetricsSlot {
    /// The handles, resolved in `metrics` for `name` on first use.
    pub fn get_or_resolve(&self, metrics: &Metrics, name: &str) -> &EndpointMetrics {
        self.0.get_or_init(|| metrics.endpoint(name))
    }
    /// The handles when resolved.
    pub fn get(&self) -> Option<&EndpointMetrics> {
        self.0.get()
    }
}

/// A state backend measured for the metrics: the time from issuing a journal write
/// (`create_run`, `record`) to its commit, and every failure that is the backend's (unavailable,
/// unreadable record — not "no such run" or "cannot retry a running run").
pub struct Metered {
    inner: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
}

impl Metered {
    /// Times and counts every call of `inner` in `metrics`.
    pub fn new(inner: Arc<dyn Backend>, metrics: Arc<Metrics>) -> Metered {
        Metered { inner, metrics }
    }

    fn watch<T: Send + 'static>(
        &self,
        f: BoxFuture<'static, StateResult<T>>,
        commit: Option<Instant>,
    ) -> BoxFuture<'static, StateResult<T>> {
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let r = f.await;
            match (&r, commit) {
                (Ok(_), Some(t)) => metrics.global().journal_commit(t.elapsed()),
                (Err(StateError::Unavailable(_) | StateError::Corrupt(_)), _) => {
                    metrics.global().backend_error()
                }
                _ => {}
            }
            r
        })
    }
}

impl Backend for Metered {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn store(&self) -> Arc<dyn SharedStore> {
        self.inner.store()
    }
    fn create_run(&self, run: RunRecord) -> BoxFuture<'static, StateResult<()>> {
        let t = Instant::now();
        self.watch(self.inner.create_run(run), Some(t))
    }
    fn create_request_run(
        &self,
        run: RunRecord,
        data: &crate::Value,
    ) -> BoxFuture<'static, StateResult<()>> {
        let t = Instant::now();
        self.watch(self.inner.create_request_run(run, data), Some(t))
    }
    fn record(&self, event: RunEvent) -> BoxFuture<'static, StateResult<()>> {
        let t = Instant::now();
        self.watch(self.inner.record(event), Some(t))
    }
    fn record_all(&self, events: Vec<RunEvent>) -> BoxFuture<'static, StateResult<()>> {
        let t = Instant::now();
        self.watch(self.inner.record_all(events), Some(t))
    }
    fn recover(&self, owner: &str, now: i64) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        self.watch(self.inner.recover(owner, now), None)
    }
    fn claim(&self, owner: &str, limit: usize) -> BoxFuture<'static, StateResult<Vec<RunRecord>>> {
        self.watch(self.inner.claim(owner, limit), None)
    }
    fn list_runs(&self, filter: RunFilter) -> BoxFuture<'static, StateResult<RunPage>> {
        self.watch(self.inner.list_runs(filter), None)
    }
    fn get_run(&self, id: &str) -> BoxFuture<'static, StateResult<RunRecord>> {
        self.watch(self.inner.get_run(id), None)
    }
    fn retry_run(&self, id: &str, from: RetryFrom) -> BoxFuture<'static, StateResult<RunRecord>> {
        self.watch(self.inner.retry_run(id, from), None)
    }
    fn purge(&self, retention: Retention, now: i64) -> BoxFuture<'static, StateResult<u64>> {
        self.watch(self.inner.purge(retention, now), None)
    }
    fn release(&self, id: &str) -> BoxFuture<'static, StateResult<()>> {
        self.watch(self.inner.release(id), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_metric_is_registered_and_counts() {
        let m = Metrics::new();
        let text = m.encode();
        // Every family is there from the start, except the request counter, whose series are
        // made by the first request of each status.
        assert!(!text.contains("flexscript_requests_total"), "{text}");
        m.no_endpoint().request(200, Duration::ZERO);
        let text = m.encode();
        for name in [
            "flexscript_requests_total",
            "flexscript_request_duration_seconds",
            "flexscript_runs_total",
            "flexscript_run_duration_seconds",
            "flexscript_runs_active",
            "flexscript_step_failures_total",
            "flexscript_webhook_calls_total",
            "flexscript_journal_commit_seconds",
            "flexscript_backend_errors_total",
        ] {
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
        assert_eq!(
            value(&text, "flexscript_runs_active{state=\"queued\"}"),
            Some(0.0)
        );
        let ep = m.endpoint("orders");
        ep.request(200, Duration::from_millis(3));
        ep.request(200, Duration::from_millis(3));
        ep.request(418, Duration::from_millis(3));
        // a second resolution of the same name counts into the same series
        m.endpoint("orders").request(200, Duration::from_millis(1));
        ep.run_finished(RunEnd::Failed, Duration::from_secs(2));
        m.no_endpoint().request(404, Duration::from_micros(10));
        let g = ep.global();
        g.step_failed("webhook");
        g.webhook_call(503);
        g.webhook_call(0);
        g.webhook_call(204);
        g.set_active(RunState::Running, 1);
        m.global().set_active(RunState::Waiting, 2);
        g.set_active(RunState::Waiting, 0);
        g.journal_commit(Duration::from_millis(2));
        g.backend_error();
        let text = m.encode();
        let v = |s: &str| value(&text, s);
        assert_eq!(
            v("flexscript_requests_total{endpoint=\"orders\",status=\"200\"}"),
            Some(3.0)
        );
        assert_eq!(
            v("flexscript_requests_total{endpoint=\"orders\",status=\"418\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_requests_total{endpoint=\"-\",status=\"404\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_request_duration_seconds_count{endpoint=\"orders\"}"),
            Some(4.0)
        );
        assert_eq!(
            v("flexscript_runs_total{endpoint=\"orders\",status=\"failed\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_runs_total{endpoint=\"orders\",status=\"succeeded\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("flexscript_step_failures_total{type=\"webhook\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_step_failures_total{type=\"store\"}"),
            Some(0.0)
        );
        assert_eq!(
            v("flexscript_webhook_calls_total{class=\"5xx\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_webhook_calls_total{class=\"error\"}"),
            Some(1.0)
        );
        assert_eq!(
            v("flexscript_webhook_calls_total{class=\"2xx\"}"),
            Some(1.0)
        );
        assert_eq!(v("flexscript_runs_active{state=\"running\"}"), Some(1.0));
        assert_eq!(v("flexscript_runs_active{state=\"waiting\"}"), Some(0.0));
        assert_eq!(v("flexscript_journal_commit_seconds_count"), Some(1.0));
        assert_eq!(v("flexscript_backend_errors_total"), Some(1.0));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.endpoint("a \"quoted\"\nname\\")
            .request(200, Duration::ZERO);
        let text = m.encode();
        assert!(
            text.contains(r#"endpoint="a \"quoted\"\nname\\",status="200"} 1"#),
            "{text}"
        );
    }
}
