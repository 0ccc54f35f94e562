//! Running an endpoint's step tree for one request (docs/listener.md "Workflows").
//!
//! Siblings run concurrently as tokio tasks; each branch gets its own copy of `__data`
//! (copy-on-write: `Value` maps are reference counted), so values written by siblings are
//! invisible. Children live in a `JoinSet` owned by their parent's task: aborting the run's
//! task (SSE client gone, shutdown) cancels the whole tree. A failing step stops its branch and
//! is logged with endpoint, step id and error; the run reports it through [`Run::fail`].

use super::condition;
use super::config::{Answer, Branch, Endpoint, ReturnType, StepKind, ValueSource};
use super::respond::{self, Body};
use super::webhook::{self, HttpClient};
use crate::host::SharedStore;
use crate::{RenderOptions, Template, Value};
use hyper::Response;
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
        }
    }

    fn take_reply(&self) -> Option<oneshot::Sender<Outcome>> {
        self.reply.lock().ok().and_then(|mut r| r.take())
    }

    /// Reports a failed step to a waiting `continue`/`sse` request.
    async fn fail(&self, step: &str) {
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

/// Runs the whole tree of `run`'s endpoint on `data`; returns when every branch is done.
pub async fn run(run: Arc<Run>, data: Value) {
    let roots = run.endpoint.roots().to_vec();
    run_steps(run, roots, data).await;
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
