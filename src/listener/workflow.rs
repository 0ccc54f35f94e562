//! Running an endpoint's step tree for one request (docs/listener.md "Workflows").
//!
//! Siblings run concurrently as tokio tasks; each branch gets its own copy of `__data`
//! (copy-on-write: `Value` maps are reference counted), so values written by siblings are
//! invisible. Children live in a `JoinSet` owned by their parent's task: aborting the run's
//! task (SSE client gone, shutdown) cancels the whole tree. A failing step stops its branch and
//! is logged with endpoint, step id and error; the run reports it through `Run::fail`.

use super::condition;
use super::config::{
    Answer, Branch, Endpoint, Operator, ReturnType, RunMode, StepKind, ValueSource,
};
use super::respond::{self, Body};
use super::runs::Runner;
use super::webhook::{self, HttpClient};
use crate::host::SharedStore;
use crate::state::{self, Checkpoint, RunEvent, StepRecord, StepStatus};
use crate::{RenderOptions, Template, Value};
use hyper::Response;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

/// What a `continue` endpoint's waiting request receives first.
pub enum Outcome {
    /// A `respond` step's rendered answer.
    Reply(Response<Body>),
    /// A step failed before any answer (its id).
    Failed(String),
    /// A step failed before any answer because the shared store (Redis) was unreachable (its
    /// id): the request is answered 503 with `Retry-After`.
    Unavailable(String),
}

/// A message from a run to an `sse` stream.
#[derive(Debug)]
pub enum SseMsg {
    /// One event.
    Frame {
        /// The event's name.
        event: Option<String>,
        /// The rendered data.
        data: String,
        /// Whether the stream ends after it.
        is_final: bool,
    },
    /// A step failed (its id).
    Failed(String),
    /// A step failed because the shared store could not be reached (its id): the request is
    /// answered 503 with `Retry-After`, as a `continue` is.
    Unavailable(String),
}

/// The shared state of one run.
pub struct Run {
    /// The endpoint being run.
    pub endpoint: Arc<Endpoint>,
    /// The run's id (logs, the journal, `Idempotency-Key`s).
    pub run_id: String,
    /// The shared store of the scripts.
    pub store: Arc<dyn SharedStore>,
    /// The server time zone (condition dates).
    pub tz: chrono_tz::Tz,
    /// The outbound client of `webhook` steps.
    pub client: HttpClient,
    /// The journal and the worker pool (src/listener/runs.rs).
    pub runner: Arc<Runner>,
    /// False for sync `continue` and `sse`: journaled for history, never resumed.
    pub resumable: bool,
    /// Due times of steps already waiting on their delay (a resumed run waits only what is
    /// left), by step id.
    pub dues: HashMap<String, i64>,
    /// For `continue`: the first answer goes here.
    pub reply: Mutex<Option<oneshot::Sender<Outcome>>>,
    /// For `sse`: frames go here (dropped when the run ends → the stream sends `event: end`).
    pub sse: Option<mpsc::Sender<SseMsg>>,
    sse_closed: AtomicBool,
    /// Events emitted so far.
    pub emitted: AtomicU64,
    /// Journal events of a resumable run not written yet (its `running` mark, the starts
    /// and checkpoints of steps without an external effect): they go to the journal as one
    /// write with the run's next event that is waited for (a step acting outside `__data`, a
    /// delay, a failure) or with the activation's end ([`Run::take_pending`]): a run of
    /// `store` / `condition` steps is journaled as its creation and one write at its end.
    pending: Mutex<Vec<RunEvent>>,
}

/// How a journal event of a resumable run is written (non-resumable runs write each event at
/// once and never wait).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Not now: the event is kept in the run's buffer and written with the run's next event
    /// that is waited for, or at the activation's end (one write, one transaction).
    Later,
    /// Now: the buffered events and this one are written as one write, and the caller
    /// continues once it is committed.
    Now,
}

/// Whether `kind` acts outside the run's `__data` (an HTTP call, a shared-store write, a log
/// line, an answer, an event): such a step starts only once everything the run journaled before
/// it is committed, so that after a crash it runs again — if it must — on the same `__data`,
/// and no earlier step runs again after it acted. `store` and `condition` steps only change
/// `__data` (docs/state.md, "Resume"): nothing waits for their checkpoints.
pub(crate) fn acts_outside(kind: &StepKind) -> bool {
    !matches!(kind, StepKind::Store { .. } | StepKind::Condition { .. })
}

impl Run {
    /// A run of `endpoint`, journaled and resumed through `runner`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        endpoint: Arc<Endpoint>,
        run_id: String,
        store: Arc<dyn SharedStore>,
        tz: chrono_tz::Tz,
        client: HttpClient,
        runner: Arc<Runner>,
        reply: Option<oneshot::Sender<Outcome>>,
        sse: Option<mpsc::Sender<SseMsg>>,
    ) -> Run {
        let resumable = !(sse.is_some()
            || (matches!(endpoint.return_type, ReturnType::Continue)
                && endpoint.run_mode == RunMode::Sync));
        Run {
            endpoint,
            run_id,
            store,
            tz,
            client,
            runner,
            resumable,
            dues: HashMap::new(),
            reply: Mutex::new(reply),
            sse,
            sse_closed: AtomicBool::new(false),
            emitted: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
        }
    }

    fn take_reply(&self) -> Option<oneshot::Sender<Outcome>> {
        self.reply.lock().ok().and_then(|mut r| r.take())
    }

    /// True while a request waits for this run's answer (it must not be parked).
    pub(crate) fn has_listener(&self) -> bool {
        self.sse.is_some() || self.reply.lock().map(|r| r.is_some()).unwrap_or(false)
    }

    /// Reports a failed step to a waiting `continue`/`sse` request.
    async fn fail(&self, step: &str, unavailable: bool) {
        if let Some(tx) = self.take_reply() {
            let _ = tx.send(if unavailable {
                Outcome::Unavailable(step.to_string())
            } else {
                Outcome::Failed(step.to_string())
            });
        }
        if let Some(tx) = &self.sse {
            if self.emitted.load(Ordering::SeqCst) == 0 && !self.sse_closed.load(Ordering::SeqCst) {
                let msg = if unavailable {
                    SseMsg::Unavailable(step.to_string())
                } else {
                    SseMsg::Failed(step.to_string())
                };
                let _ = tx.send(msg).await;
            }
        }
    }

    /// Journals `event`. A resumable run buffers it with [`Wait::Later`]; with [`Wait::Now`]
    /// it writes the buffer and `event` as one write and waits for its commit. A
    /// non-resumable run writes it at once and does not wait. The backend queues a write at
    /// the call (under the buffer's lock), so the events of a run reach the journal in the
    /// order of these calls, also from concurrent branches.
    pub(crate) async fn journal(&self, event: RunEvent, wait: Wait) {
        if !self.resumable {
            drop(self.runner.backend.record(event));
            return;
        }
        let f = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.push(event);
            if wait == Wait::Later {
                return;
            }
            self.runner
                .backend
                .record_all(std::mem::take(&mut *pending))
        };
        if let Err(e) = f.await {
            tracing::error!(endpoint = %self.endpoint.name, run_id = %self.run_id,
                error = %e, "journal write failed");
            self.runner.strand(&self.run_id);
        }
    }

    /// Takes the events buffered with [`Wait::Later`]: at the end of an activation (its
    /// branches are done, so nothing is added meanwhile), to be written with the run's status.
    pub(crate) fn take_pending(&self) -> Vec<RunEvent> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Runs the whole tree of `run`'s endpoint on `data`; returns when every branch is done or
/// parked on a delay.
pub async fn run(run: Arc<Run>, data: Value) {
    let roots = run
        .endpoint
        .roots()
        .iter()
        .map(|i| (*i, data.clone()))
        .collect();
    run_from(run, roots).await;
}

/// Runs the given steps (each with its own `__data`) and their subtrees concurrently.
pub async fn run_from(run: Arc<Run>, steps: Vec<(usize, Value)>) {
    let mut steps = steps;
    match steps.len() {
        0 => {}
        1 => {
            if let Some((i, d)) = steps.pop() {
                run_step(run, i, d).await
            }
        }
        _ => {
            let mut set = JoinSet::new();
            for (i, d) in steps {
                set.spawn(run_step(run.clone(), i, d));
            }
            while set.join_next().await.is_some() {}
        }
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
            let kind = step.kind.name();
            if step.delay_ms > 0 {
                let due = match run.dues.get(&step.id) {
                    Some(d) => *d,
                    None => {
                        let due = state::now_ms().saturating_add(step.delay_ms as i64);
                        run.journal(
                            RunEvent::StepWaiting {
                                run: run.run_id.clone(),
                                step: step.id.clone(),
                                kind: kind.into(),
                                due,
                            },
                            Wait::Now,
                        )
                        .await;
                        due
                    }
                };
                let left = due.saturating_sub(state::now_ms());
                if left > 0 {
                    if run.resumable && !run.has_listener() {
                        // Nobody waits for this run: it holds no task while it waits.
                        run.runner.park(&run.run_id, &step.id, due);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(left as u64)).await;
                }
            }
            run.journal(
                RunEvent::StepStarted {
                    run: run.run_id.clone(),
                    step: step.id.clone(),
                    kind: kind.into(),
                    at: state::now_ms(),
                },
                // A step acting outside `__data` waits for everything journaled before it.
                if acts_outside(&step.kind) {
                    Wait::Now
                } else {
                    Wait::Later
                },
            )
            .await;
            match exec(&run, &step.id, &step.kind, &mut data).await {
                Ok(checkpoint) => {
                    let branch = checkpoint
                        .branch
                        .map(|yes| if yes { Branch::Yes } else { Branch::No });
                    run.journal(
                        RunEvent::StepSucceeded {
                            run: run.run_id.clone(),
                            step: step.id.clone(),
                            at: state::now_ms(),
                            checkpoint,
                        },
                        // Buffered: written with the next step that acts outside `__data`, a
                        // delay, a failure, or the run's final status.
                        Wait::Later,
                    )
                    .await;
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
                    run.journal(
                        RunEvent::StepFailed {
                            run: run.run_id.clone(),
                            step: step.id.clone(),
                            at: state::now_ms(),
                            error: e.clone(),
                        },
                        Wait::Now,
                    )
                    .await;
                    run.runner
                        .step_failed(&run.run_id, &format!("step \"{}\" failed: {e}", step.id));
                    run.runner.metrics.global().step_failed(kind);
                    run.fail(&step.id, e.contains(crate::host::STORE_UNAVAILABLE))
                        .await;
                    return;
                }
            }
        }
    })
}

/// `__data` for a step whose ancestors finished in an earlier attempt: the request data with
/// each ancestor's checkpoint applied in order.
pub fn apply_checkpoint(data: &mut Value, checkpoint: &Checkpoint) {
    for (path, value) in &checkpoint.set {
        set_path(data, path, Value::from(value));
    }
}

fn opts() -> RenderOptions {
    RenderOptions::default()
}

fn render(t: &Template, data: &Value) -> Result<String, String> {
    render_with(t, data, opts())
}

fn render_with(t: &Template, data: &Value, opts: RenderOptions) -> Result<String, String> {
    respond::with_context(data, |ctx| t.render_value(ctx, opts)).map_err(|e| one_line(t.name(), &e))
}

fn value_of(src: &ValueSource, data: &Value) -> Result<Value, String> {
    value_with(src, data, opts())
}

fn value_with(src: &ValueSource, data: &Value, opts: RenderOptions) -> Result<Value, String> {
    match src {
        ValueSource::Template(t) => render_with(t, data, opts).map(Value::from),
        ValueSource::Expression(x) => respond::with_context(data, |ctx| x.eval(ctx, opts))
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

/// What [`run_prefix`] did before a new run was journaled.
pub(crate) struct Prefix {
    /// The steps that ran (all succeeded), in the order they ran.
    pub steps: Vec<StepRecord>,
    /// The steps to run next, each with its `__data`: where the run's activation starts.
    pub frontier: Vec<(usize, Value)>,
    /// The clock (ms since the Unix epoch) when the last step ended (or when none ran).
    pub ended: i64,
}

impl Prefix {
    /// When the first step began: the run's start.
    pub fn started(&self) -> Option<i64> {
        self.steps.first().and_then(|s| s.started)
    }
}

/// Runs the leading steps of a new run that only change its `__data` (`store` and
/// `condition` steps without `delay_ms`, [`acts_outside`] false) before the run is journaled:
/// they are journaled with its creation, as finished steps — one write for a run made only of
/// such steps, instead of its creation and a write at its end (docs/state.md, "Leading
/// steps"). Nothing outside the run can tell when they ran: their scripts render with the
/// shared store read-only (`incrementAndGet` refused, [`RenderOptions::read_only_store`]), so
/// they read and write only the run's own `__data` (and the answer was rendered from the
/// request data before). A step that fails here — a script error, or an `incrementAndGet` —
/// changes nothing and is left to the activation, which runs it after the answer as before
/// (and logs, counts and journals its failure there). Walks the tree as the runner does: a
/// condition follows its branch; the first step of each branch not run here is left, with its
/// `__data`.
pub(crate) fn run_prefix(run: &Run, data: &Value) -> Prefix {
    let ep = &run.endpoint;
    // One clock reading per step boundary: a step's end is the next one's start.
    let mut now = state::now_ms();
    let mut steps = Vec::new();
    let opts = opts().with_read_only_store(true);
    let frontier = walk(ep, data.clone(), |i, data| {
        let step = &ep.steps[i];
        if step.delay_ms > 0 || acts_outside(&step.kind) {
            return Visit::Leave;
        }
        let started = now;
        let done = exec_local(run, &step.kind, data, opts);
        now = state::now_ms();
        let Some(Ok(checkpoint)) = done else {
            // (`data` is unchanged: a step writes it only once it succeeded.)
            return Visit::Leave;
        };
        let branch = checkpoint
            .branch
            .map(|yes| if yes { Branch::Yes } else { Branch::No });
        steps.push(StepRecord {
            id: step.id.clone(),
            kind: step.kind.name().into(),
            status: StepStatus::Succeeded,
            started: Some(started),
            finished: Some(now),
            due: None,
            error: None,
            checkpoint: Some(checkpoint),
        });
        Visit::Children(branch)
    });
    Prefix {
        steps,
        frontier,
        ended: now,
    }
}

/// What [`walk`] does after visiting a step.
pub(crate) enum Visit {
    /// Goes on with the step's children (of the branch a condition took).
    Children(Option<Branch>),
    /// Leaves the step to run later: it is part of the frontier, with its `__data`.
    Leave,
    /// Ends its branch here.
    Stop,
}

/// Walks `ep`'s step tree from its roots, each branch with its own `__data` (starting from
/// `data`; maps are shared until written), depth first, children in order; `visit` may change
/// a step's `__data` for its children. Returns the steps left ([`Visit::Leave`]) with their
/// `__data`. The runner's resume (src/listener/runs.rs, `frontier`: checkpoints replayed) and
/// [`run_prefix`] (leading steps run) are both such walks.
pub(crate) fn walk(
    ep: &Endpoint,
    data: Value,
    mut visit: impl FnMut(usize, &mut Value) -> Visit,
) -> Vec<(usize, Value)> {
    let mut out = Vec::new();
    let mut stack: Vec<(usize, Value)> = ep
        .roots()
        .iter()
        .rev()
        .map(|i| (*i, data.clone()))
        .collect();
    while let Some((i, mut data)) = stack.pop() {
        match visit(i, &mut data) {
            Visit::Children(branch) => {
                // The first child (taken next) keeps this `__data`, the others get copies.
                let next = ep.children(i, branch);
                if let Some((first, rest)) = next.split_first() {
                    for c in rest.iter().rev() {
                        stack.push((*c, data.clone()));
                    }
                    stack.push((*first, data));
                }
            }
            Visit::Leave => out.push((i, data)),
            Visit::Stop => {}
        }
    }
    out
}

/// Executes a step that only changes `__data` (`None` for the others), its scripts rendered
/// with `opts`; the checkpoint holds its `__data` writes and a condition's branch. `data` is
/// written only when the step succeeds.
fn exec_local(
    run: &Run,
    kind: &StepKind,
    data: &mut Value,
    opts: RenderOptions,
) -> Option<Result<Checkpoint, String>> {
    Some(match kind {
        StepKind::Condition {
            left,
            operator,
            right,
            right2,
        } => condition_step(run, (left, *operator, right, right2), data, opts),
        StepKind::Store { name, value } => store_step(name, value, data, opts),
        _ => return None,
    })
}

/// A `condition` step: its operands rendered with `opts`, the branch it takes.
fn condition_step(
    run: &Run,
    (left, operator, right, right2): (&Template, Operator, &Option<Template>, &Option<Template>),
    data: &Value,
    opts: RenderOptions,
) -> Result<Checkpoint, String> {
    let l = render_with(left, data, opts)?;
    let r = right
        .as_ref()
        .map(|t| render_with(t, data, opts))
        .transpose()?;
    let r2 = right2
        .as_ref()
        .map(|t| render_with(t, data, opts))
        .transpose()?;
    let yes = condition::evaluate(
        operator,
        &l,
        r.as_deref().unwrap_or(""),
        r2.as_deref().unwrap_or(""),
        &run.tz,
    );
    Ok(Checkpoint {
        set: Vec::new(),
        branch: Some(yes),
    })
}

/// A `store` step: its value (rendered with `opts`) written at `name` of `data`.
fn store_step(
    name: &str,
    value: &ValueSource,
    data: &mut Value,
    opts: RenderOptions,
) -> Result<Checkpoint, String> {
    let v = value_with(value, data, opts)?;
    let json = v.to_json();
    set_path(data, name, v);
    Ok(Checkpoint {
        set: vec![(name.to_string(), json)],
        branch: None,
    })
}

/// Executes one step; the checkpoint holds its `__data` writes and a condition's branch.
async fn exec(
    run: &Run,
    step_id: &str,
    kind: &StepKind,
    data: &mut Value,
) -> Result<Checkpoint, String> {
    match kind {
        StepKind::Condition {
            left,
            operator,
            right,
            right2,
        } => condition_step(run, (left, *operator, right, right2), data, opts()),
        StepKind::Store { name, value } => store_step(name, value, data, opts()),
        StepKind::SetMemory { name, value, ttl_s } => {
            let v = value_of(value, data)?;
            // A write the store could not make fails the step (never lost quietly).
            run.store
                .try_set(name, v, Duration::from_secs(*ttl_s))
                .map_err(|e| e.message().to_string())?;
            Ok(Checkpoint::default())
        }
        StepKind::Log { message } => {
            let m = render(message, data)?;
            tracing::info!(endpoint = %run.endpoint.name, run_id = %run.run_id, text = %m, "workflow log");
            Ok(Checkpoint::default())
        }
        StepKind::Respond(answer) => {
            respond_step(run, answer, data);
            Ok(Checkpoint::default())
        }
        StepKind::Emit {
            data: tpl,
            event,
            is_final,
        } => {
            let text = render(tpl, data)?;
            emit(run, event.clone(), text, *is_final).await;
            Ok(Checkpoint::default())
        }
        StepKind::Webhook {
            method,
            url,
            headers,
            body,
            timeout_ms,
            retries,
            max_response_bytes,
            sign_secret,
        } => {
            let url = render(url, data)?;
            let host = webhook::host_of(&url);
            let sign = match sign_secret.as_ref().map(|t| signing_key(run, t)) {
                None => None,
                Some(Ok(key)) => Some((key, format!("{}.{step_id}", run.run_id))),
                Some(Err(why)) => {
                    tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
                        step = %step_id, error = why, "webhook not sent");
                    let result = serde_json::json!({"ok": false, "status": 0, "body": null,
                        "headers": {}, "error": why});
                    set_path(data, "webhook", Value::from(result.clone()));
                    return Ok(Checkpoint {
                        set: vec![("webhook".into(), result)],
                        branch: None,
                    });
                }
            };
            let mut headers: Vec<(String, String)> = headers
                .iter()
                .map(|(k, t)| Ok((k.clone(), render(t, data)?)))
                .collect::<Result<_, String>>()?;
            // The same key on every attempt of this step, across resumes: receivers can drop
            // a repeat (docs/state.md). A key set by the step itself wins.
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("idempotency-key"))
            {
                headers.push((
                    "Idempotency-Key".into(),
                    format!("{}.{step_id}", run.run_id),
                ));
            }
            let call = webhook::Call {
                method: method.clone(),
                url,
                headers,
                body: body.as_ref().map(|t| render(t, data)).transpose()?,
                timeout: Duration::from_millis(*timeout_ms),
                retries: *retries,
                max_response_bytes: max_response_bytes.map(|n| n as usize),
                sign,
            };
            let result = webhook::perform(&run.client, &call).await;
            let status = result["status"].as_u64().unwrap_or(0);
            run.runner
                .metrics
                .global()
                .webhook_call(u16::try_from(status).unwrap_or(0));
            if result["ok"] != serde_json::Value::Bool(true) {
                tracing::warn!(endpoint = %run.endpoint.name, run_id = %run.run_id,
                    step = %step_id, host = %host, status = %result["status"],
                    error = %result["error"], "webhook call failed");
            }
            let json = result.clone();
            set_path(data, "webhook", Value::from(result));
            Ok(Checkpoint {
                set: vec![("webhook".into(), json)],
                branch: None,
            })
        }
    }
}

/// The HMAC key of a webhook's `sign_secret`, rendered like a settings field (no request data,
/// `env()` allowed). Errors are fixed phrases: a render message could quote the secret.
fn signing_key(run: &Run, t: &Template) -> Result<Vec<u8>, &'static str> {
    let opts = RenderOptions {
        allow_env: true,
        ..RenderOptions::default()
    };
    let secret = t.render_value(&Value::empty_map(), opts).map_err(|e| {
        tracing::error!(endpoint = %run.endpoint.name, field = t.name(), error = e.kind().as_str(),
            "sign_secret render failed");
        "sign_secret could not be rendered"
    })?;
    super::signature::standard_key(&secret).map_err(|why| match why {
        "the secret is empty" => "sign_secret is empty",
        _ => "sign_secret: whsec_ must be followed by base64",
    })
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
