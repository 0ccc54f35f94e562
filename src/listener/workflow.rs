//! Running an endpoint's step tree for one request (listener.md §5).
//!
//! Siblings run concurrently as tokio tasks; each branch gets its own copy of `__data`
//! (copy-on-write: `Value` maps are reference counted), so values written by siblings are
//! invisible. Children live in a `JoinSet` owned by their parent's task: aborting the run's
//! task (SSE client gone, shutdown) cancels the whole tree. A failing step stops its branch and
//! is logged with endpoint, step id and error; the run reports it through [`Run::fail`].
//!
//! Metrics (when the endpoint's handles are resolved, as the request handler does first): the
//! run counts as `running` from start to end and `waiting` during a `delay_ms`; at the end it
//! counts as `failed` when a step failed, `succeeded` otherwise, and `interrupted` when its task
//! was dropped before the end (SSE client gone, shutdown grace over). Failed steps are counted
//! by type, webhook calls by the status class of their final attempt.

use super::condition;
use super::config::{Answer, Branch, Endpoint, ReturnType, StepKind, ValueSource};
use super::metrics::{EndpointMetrics, RunEnd, RunState};
use super::respond::{self, Body};
use super::webhook::{self, HttpClient};
use crate::host::SharedStore;
use crate::{RenderOptions, Template, Value};
use hyper::Response;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// What a `continue` endpoint's waiting request receives first.
pub enum Outcome {
    /// A `respond` step's rendered answer.
    Reply(Response<Body>),
    /// A step failed before any answer (its id).
    Failed(String),
}

/// A message from a run to an `sse` stream.
#[derive(Debug)]
pub enum SseMsg {
    Frame {
        event: Option<String>,
        data: String,
        is_final: bool,
    },
    /// A step failed (its id).
    Failed(String),
}

/// The shared state of one run.
pub struct Run {
    pub endpoint: Arc<Endpoint>,
    pub run_id: String,
    pub store: Arc<dyn SharedStore>,
    pub tz: chrono_tz::Tz,
    pub client: HttpClient,
    /// For `continue`: the first answer goes here.
    pub reply: Mutex<Option<oneshot::Sender<Outcome>>>,
    /// For `sse`: frames go here (dropped when the run ends → the stream sends `event: end`).
    pub sse: Option<mpsc::Sender<SseMsg>>,
    sse_closed: AtomicBool,
    pub emitted: AtomicU64,
    /// A step failed (the run ends `failed`).
    failed: AtomicBool,
}

impl Run {
    pub fn new(
        endpoint: Arc<Endpoint>,
        run_id: String,
        store: Arc<dyn SharedStore>,
        tz: chrono_tz::Tz,
        client: HttpClient,
        reply: Option<oneshot::Sender<Outcome>>,
        sse: Option<mpsc::Sender<SseMsg>>,
    ) -> Run {
        Run {
            endpoint,
            run_id,
            store,
            tz,
            client,
            reply: Mutex::new(reply),
            sse,
            sse_closed: AtomicBool::new(false),
            emitted: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    fn take_reply(&self) -> Option<oneshot::Sender<Outcome>> {
        self.reply.lock().ok().and_then(|mut r| r.take())
    }

    fn metrics(&self) -> Option<&EndpointMetrics> {
        self.endpoint.metrics.get()
    }

    /// Reports a failed step to a waiting `continue`/`sse` request.
    async fn fail(&self, step: &str) {
        self.failed.store(true, Ordering::SeqCst);
        if let Some(tx) = self.take_reply() {
            let _ = tx.send(Outcome::Failed(step.to_string()));
        }
        if let Some(tx) = &self.sse {
            if self.emitted.load(Ordering::SeqCst) == 0 && !self.sse_closed.load(Ordering::SeqCst) {
                let _ = tx.send(SseMsg::Failed(step.to_string())).await;
            }
        }
    }
}

/// Counts a run in a state while alive; for `Running`, also its end (see the module docs).
struct InState {
    run: Arc<Run>,
    state: RunState,
    started: Instant,
    finished: bool,
}

impl InState {
    fn new(run: &Arc<Run>, state: RunState) -> InState {
        if let Some(m) = run.metrics() {
            m.global().enter(state);
        }
        InState {
            run: run.clone(),
            state,
            started: Instant::now(),
            finished: false,
        }
    }
}

impl Drop for InState {
    fn drop(&mut self) {
        let Some(m) = self.run.metrics() else {
            return;
        };
        m.global().leave(self.state);
        if self.state == RunState::Running {
            let end = match (self.finished, self.run.failed.load(Ordering::SeqCst)) {
                (false, _) => RunEnd::Interrupted,
                (true, true) => RunEnd::Failed,
                (true, false) => RunEnd::Succeeded,
            };
            m.run_finished(end, self.started.elapsed());
        }
    }
}

/// Runs the whole tree of `run`'s endpoint on `data`; returns when every branch is done.
pub async fn run(run: Arc<Run>, data: Value) {
    let mut counted = InState::new(&run, RunState::Running);
    let roots = run.endpoint.roots().to_vec();
    run_steps(run, roots, data).await;
    counted.finished = true;
}

/// The `type` of a step, as written in the configuration.
pub fn step_type(kind: &StepKind) -> &'static str {
    match kind {
        StepKind::Condition { .. } => "condition",
        StepKind::Store { .. } => "store",
        StepKind::Respond(_) => "respond",
        StepKind::Emit { .. } => "emit",
        StepKind::Webhook { .. } => "webhook",
        StepKind::SetMemory { .. } => "set_memory",
        StepKind::Log { .. } => "log",
    }
}

type BoxFut = Pin<Box<dyn Future<Output = ()> + Send>>;

fn run_steps(run: Arc<Run>, steps: Vec<usize>, data: Value) -> BoxFut {
    Box::pin(async move {
        match steps.len() {
            0 => {}
            1 => run_step(run, steps[0], data).await,
            _ => {
                let mut set = JoinSet::new();
                for i in steps {
                    set.spawn(run_step(run.clone(), i, data.clone()));
                }
                while set.join_next().await.is_some() {}
            }
        }
    })
}

/// Runs step `i` and its subtree. A chain of single children runs in this task (no nesting);
/// two or more children become tasks of their own, so poll depth stays bounded.
fn run_step(run: Arc<Run>, mut i: usize, mut data: Value) -> BoxFut {
    Box::pin(async move {
        loop {
            let Some(step) = run.endpoint.steps.get(i) else {
                return;
            };
            if step.delay_ms > 0 {
                let _waiting = InState::new(&run, RunState::Waiting);
                tokio::time::sleep(Duration::from_millis(step.delay_ms)).await;
            }
            match exec(&run, &step.kind, &mut data).await {
                Ok(branch) => {
                    let next = run.endpoint.children(i, branch);
                    match next.as_slice() {
                        [] => return,
                        [only] => i = *only,
                        _ => return run_steps(run.clone(), next, data).await,
                    }
                }
                Err(e) => {
                    tracing::error!(
                        endpoint = %run.endpoint.name, run_id = %run.run_id, step = %step.id,
                        error = %e, "workflow step failed"
                    );
                    if let Some(m) = run.metrics() {
                        m.global().step_failed(step_type(&step.kind));
                    }
                    run.fail(&step.id).await;
                    return;
                }
            }
        }
    })
}

fn opts() -> RenderOptions {
    RenderOptions::default()
}

fn render(t: &Template, data: &Value) -> Result<String, String> {
    t.render_value(&respond::context(data), opts())
        .map_err(|e| one_line(t.name(), &e))
}

fn value_of(src: &ValueSource, data: &Value) -> Result<Value, String> {
    match src {
        ValueSource::Template(t) => render(t, data).map(Value::from),
        ValueSource::Expression(x) => x
            .eval(&respond::context(data), opts())
            .map_err(|e| one_line("expression", &e)),
    }
}

/// A script error on one log line: field, message, position in the script.
fn one_line(field: &str, e: &crate::Error) -> String {
    format!("{field}: {}", super::config::script_error(e))
}

/// Writes `value` at the dotted path `name` of the map `data` (creating maps on the way).
pub fn set_path(data: &mut Value, name: &str, value: Value) {
    let (head, rest) = match name.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (name, None),
    };
    if !matches!(data, Value::Map(_)) {
        *data = Value::empty_map();
    }
    if let Value::Map(m) = data {
        let m = Arc::make_mut(m);
        match rest {
            None => {
                m.insert(head.into(), value);
            }
            Some(rest) => {
                let slot = m.entry(head.into()).or_insert_with(Value::empty_map);
                set_path(slot, rest, value);
            }
        }
    }
}

/// Executes one step; `Ok(Some(branch))` for a condition.
async fn exec(run: &Run, kind: &StepKind, data: &mut Value) -> Result<Option<Branch>, String> {
    match kind {
        StepKind::Condition {
            left,
            operator,
            right,
            right2,
        } => {
            let l = render(left, data)?;
            let r = right.as_ref().map(|t| render(t, data)).transpose()?;
            let r2 = right2.as_ref().map(|t| render(t, data)).transpose()?;
            let yes = condition::evaluate(
                *operator,
                &l,
                r.as_deref().unwrap_or(""),
                r2.as_deref().unwrap_or(""),
                &run.tz,
            );
            Ok(Some(if yes { Branch::Yes } else { Branch::No }))
        }
        StepKind::Store { name, value } => {
            let v = value_of(value, data)?;
            set_path(data, name, v);
            Ok(None)
        }
        StepKind::SetMemory { name, value, ttl_s } => {
            let v = value_of(value, data)?;
            run.store.set(name, v, Duration::from_secs(*ttl_s));
            Ok(None)
        }
        StepKind::Log { message } => {
            let m = render(message, data)?;
            tracing::info!(endpoint = %run.endpoint.name, run_id = %run.run_id, text = %m, "workflow log");
            Ok(None)
        }
        StepKind::Respond(answer) => {
            respond_step(run, answer, data);
            Ok(None)
        }
        StepKind::Emit {
            data: tpl,
            event,
            is_final,
        } => {
            let text = render(tpl, data)?;
            emit(run, event.clone(), text, *is_final).await;
            Ok(None)
        }
        StepKind::Webhook {
            method,
            url,
            headers,
            body,
            timeout_ms,
            retries,
        } => {
            let call = webhook::Call {
                method: method.clone(),
                url: render(url, data)?,
                headers: headers
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), render(t, data)?)))
                    .collect::<Result<_, String>>()?,
                body: body.as_ref().map(|t| render(t, data)).transpose()?,
                timeout: Duration::from_millis(*timeout_ms),
                retries: *retries,
            };
            let result = webhook::perform(&run.client, &call).await;
            if let Some(m) = run.metrics() {
                let status = result["status"].as_u64().unwrap_or(0);
                m.global().webhook_call(u16::try_from(status).unwrap_or(0));
            }
            if result["ok"] != serde_json::Value::Bool(true) {
                tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
                    status = %result["status"], error = %result["error"], "webhook call failed");
            }
            set_path(data, "webhook", Value::from(result));
            Ok(None)
        }
    }
}

fn respond_step(run: &Run, answer: &Answer, data: &Value) {
    if !matches!(run.endpoint.return_type, ReturnType::Continue) {
        tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
            "respond step ignored: the endpoint does not use return_type = \"continue\"");
        return;
    }
    match run.take_reply() {
        Some(tx) => {
            let resp = respond::answer(&run.endpoint.name, answer, data);
            if tx.send(Outcome::Reply(resp)).is_err() {
                tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
                    "respond step too late: the request was already answered");
            }
        }
        None => tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
            "respond step ignored: the request was already answered"),
    }
}

async fn emit(run: &Run, event: Option<String>, data: String, is_final: bool) {
    let Some(tx) = &run.sse else {
        tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
            "emit step ignored: the endpoint does not use return_type = \"sse\"");
        return;
    };
    if run.sse_closed.load(Ordering::SeqCst) {
        tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
            "emit step ignored: the stream was closed by a final emit");
        return;
    }
    if is_final {
        run.sse_closed.store(true, Ordering::SeqCst);
    }
    run.emitted.fetch_add(1, Ordering::SeqCst);
    let _ = tx
        .send(SseMsg::Frame {
            event,
            data,
            is_final,
        })
        .await;
}
