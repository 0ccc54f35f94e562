//! The records of the run journal and their JSON forms (stored as JSON text by the SQLite
//! backend, answered as JSON by the admin API). Decoding stored text never panics: a corrupt
//! record is a [`StateError::Corrupt`] for that run.

use super::StateError;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The status of a run (docs/state.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Accepted, waiting for a worker (or, owner-less, to be claimed).
    Queued,
    /// On a worker.
    Running,
    /// A step waits for its delay.
    Waiting,
    /// Every step ran.
    Succeeded,
    /// A step failed.
    Failed,
    /// Stopped by a crash or shutdown and not resumable (sync `continue`, `sse`).
    Interrupted,
}

impl RunStatus {
    /// The status as stored and shown (`queued`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// The status named `s`; `None` for an unknown name.
    pub fn parse(s: &str) -> Option<RunStatus> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "waiting" => RunStatus::Waiting,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "interrupted" => RunStatus::Interrupted,
            _ => return None,
        })
    }

    /// `succeeded`, `failed` or `interrupted`.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RunStatus::Succeeded | RunStatus::Failed | RunStatus::Interrupted
        )
    }
}

/// The status of one step of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepStatus {
    /// Started.
    Running,
    /// Waiting for its delay.
    Waiting,
    /// Finished.
    Succeeded,
    /// Failed (its branch stopped).
    Failed,
}

impl StepStatus {
    /// The status as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Waiting => "waiting",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
        }
    }

    /// The status named `s`; `None` for an unknown name.
    pub fn parse(s: &str) -> Option<StepStatus> {
        Some(match s {
            "running" => StepStatus::Running,
            "waiting" => StepStatus::Waiting,
            "succeeded" => StepStatus::Succeeded,
            "failed" => StepStatus::Failed,
            _ => return None,
        })
    }
}

/// The `__data` changes a finished step made, and the branch a `condition` took: enough to
/// rebuild the data of the steps after it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// `(dotted path, value)` writes, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, Json)>,
    /// For a `condition`: `true` = the `yes` branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<bool>,
}

impl Checkpoint {
    /// The JSON text stored for this checkpoint.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Decodes stored text.
    pub fn from_text(text: &str) -> Result<Checkpoint, StateError> {
        serde_json::from_str(text).map_err(|e| StateError::Corrupt(format!("checkpoint: {e}")))
    }
}

/// One step of a run, as journaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    /// The step's id.
    pub id: String,
    /// The step type (`store`, `webhook`, …).
    pub kind: String,
    /// Where the step is.
    pub status: StepStatus,
    /// When it (last) began, in ms since the Unix epoch.
    pub started: Option<i64>,
    /// When it finished.
    pub finished: Option<i64>,
    /// When a waiting step's delay is over.
    pub due: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// What a finished step changed.
    pub checkpoint: Option<Checkpoint>,
}

/// A whole run: what the journal keeps (docs/state.md "History").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// The run's id.
    pub id: String,
    /// The endpoint's name and hashes (a resumed run finds its endpoint by the hashes).
    pub endpoint: String,
    /// The endpoint's first hash.
    pub first_hash: String,
    /// The endpoint's second hash.
    pub second_hash: String,
    /// The SHA-256 of the configuration file that accepted the run.
    pub config_fingerprint: String,
    /// False for sync `continue` and `sse` runs: after a crash they are `interrupted`.
    pub resumable: bool,
    /// Where the run is.
    pub status: RunStatus,
    /// 1 for the first execution, raised by each resume and retry.
    pub attempt: u32,
    /// When it was accepted, in ms since the Unix epoch.
    pub created: i64,
    /// When it (last) began running.
    pub started: Option<i64>,
    /// When it reached a final status.
    pub finished: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The request `__data`, without credential headers.
    pub data: Json,
    /// Its steps, in the order they began.
    pub steps: Vec<StepRecord>,
    /// The process executing the run (`None`: free to be claimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl RunRecord {
    /// The record of a new `queued` run.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: String,
        endpoint: String,
        first_hash: String,
        second_hash: String,
        config_fingerprint: String,
        resumable: bool,
        data: Json,
        created: i64,
        owner: Option<String>,
    ) -> RunRecord {
        RunRecord {
            id,
            endpoint,
            first_hash,
            second_hash,
            config_fingerprint,
            resumable,
            status: RunStatus::Queued,
            attempt: 1,
            created,
            started: None,
            finished: None,
            error: None,
            data,
            steps: Vec::new(),
            owner,
        }
    }

    /// The step record with id `id`.
    pub fn step(&self, id: &str) -> Option<&StepRecord> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The summary line of this run.
    pub fn summary(&self) -> RunSummary {
        RunSummary {
            id: self.id.clone(),
            endpoint: self.endpoint.clone(),
            status: self.status,
            created: self.created,
            duration_ms: duration_ms(self.started, self.finished),
            error: self.error.clone(),
        }
    }

    /// The JSON text of the whole record.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// Decodes the JSON text of a whole record.
    pub fn from_text(text: &str) -> Result<RunRecord, StateError> {
        serde_json::from_str(text).map_err(|e| StateError::Corrupt(format!("run: {e}")))
    }

    /// Applies `event` to this record (the memory backend's journal, and tests).
    pub fn apply(&mut self, event: &super::RunEvent) {
        use super::RunEvent as E;
        match event {
            E::Status {
                status, at, error, ..
            } => {
                self.status = *status;
                match status {
                    RunStatus::Running => {
                        self.started.get_or_insert(*at);
                    }
                    s if s.is_final() => self.finished = Some(*at),
                    _ => {}
                }
                if error.is_some() || status.is_final() {
                    self.error = error.clone();
                }
            }
            E::StepStarted { step, kind, at, .. } => {
                let s = self.step_mut(step, kind);
                s.status = StepStatus::Running;
                s.started = Some(*at);
                s.finished = None;
                s.error = None;
                s.checkpoint = None;
            }
            E::StepWaiting {
                step, kind, due, ..
            } => {
                let s = self.step_mut(step, kind);
                s.status = StepStatus::Waiting;
                s.due = Some(*due);
            }
            E::StepSucceeded {
                step,
                at,
                checkpoint,
                ..
            } => {
                let s = self.step_mut(step, "");
                s.status = StepStatus::Succeeded;
                s.finished = Some(*at);
                s.checkpoint = Some(checkpoint.clone());
            }
            E::StepFailed {
                step, at, error, ..
            } => {
                let s = self.step_mut(step, "");
                s.status = StepStatus::Failed;
                s.finished = Some(*at);
                s.error = Some(error.clone());
            }
        }
    }

    fn step_mut(&mut self, id: &str, kind: &str) -> &mut StepRecord {
        let i = match self.steps.iter().position(|s| s.id == id) {
            Some(i) => i,
            None => {
                self.steps.push(StepRecord {
                    id: id.to_string(),
                    kind: kind.to_string(),
                    status: StepStatus::Running,
                    started: None,
                    finished: None,
                    due: None,
                    error: None,
                    checkpoint: None,
                });
                self.steps.len() - 1
            }
        };
        let s = &mut self.steps[i];
        if s.kind.is_empty() && !kind.is_empty() {
            s.kind = kind.to_string();
        }
        s
    }

    /// Prepares a retry (see [`super::Backend::retry_run`]); `Conflict` unless the run is
    /// `failed` or `interrupted`.
    pub fn requeue(&mut self, from: super::RetryFrom) -> Result<(), StateError> {
        if !matches!(self.status, RunStatus::Failed | RunStatus::Interrupted) {
            return Err(StateError::Conflict(format!(
                "run {} is {}; only failed or interrupted runs can be retried",
                self.id,
                self.status.as_str()
            )));
        }
        match from {
            super::RetryFrom::Start => self.steps.clear(),
            super::RetryFrom::Failed => self.steps.retain(|s| s.status == StepStatus::Succeeded),
        }
        self.status = RunStatus::Queued;
        self.attempt = self.attempt.saturating_add(1);
        self.finished = None;
        self.error = None;
        self.owner = None;
        // A retried run is continued by the journal, with or without a waiting request.
        self.resumable = true;
        Ok(())
    }
}

/// One line of a run listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub id: String,
    /// The endpoint's name.
    pub endpoint: String,
    /// Where the run is.
    pub status: RunStatus,
    /// When it was accepted, in ms since the Unix epoch.
    pub created: i64,
    /// From start to finish, for a finished run.
    pub duration_ms: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A run's duration in a listing: from its start to its finish, when it has both.
pub(crate) fn duration_ms(started: Option<i64>, finished: Option<i64>) -> Option<i64> {
    match (started, finished) {
        (Some(s), Some(f)) => Some((f - s).max(0)),
        _ => None,
    }
}

/// A run listing query: newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFilter {
    /// Only runs of this endpoint (by name).
    pub endpoint: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// At most this many runs (1..=1000; 0 means 50).
    pub limit: usize,
    /// The `next` cursor of a previous page.
    pub before: Option<String>,
}

impl Default for RunFilter {
    fn default() -> RunFilter {
        RunFilter {
            endpoint: None,
            status: None,
            limit: 50,
            before: None,
        }
    }
}

impl RunFilter {
    /// The limit clamped to 1..=1000 (0 → 50).
    pub fn clamped_limit(&self) -> usize {
        match self.limit {
            0 => 50,
            n => n.min(1000),
        }
    }
}

/// A page of a run listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunSummary>,
    /// Pass as [`RunFilter::before`] for the next (older) page; `None` on the last page.
    pub next: Option<String>,
}

/// Header names (as in `__headers`) never journaled: credentials.
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy_authorization",
    "token",
    "apikey",
    "x_api_key",
    "cookie",
];

/// The request `__data` as journaled: JSON without the credential headers.
pub fn journal_data(data: &crate::Value) -> Json {
    let mut json = data.to_json();
    if let Some(headers) = json.get_mut("__headers").and_then(Json::as_object_mut) {
        for h in SECRET_HEADERS {
            headers.shift_remove(*h);
        }
    }
    json
}

/// `run` with `data` as its request data, journaled ([`journal_data`]: without the credential
/// headers): what [`Backend::create_request_run`](super::Backend::create_request_run) stores
/// when a backend has no faster way.
pub fn with_request_data(mut run: RunRecord, data: &crate::Value) -> RunRecord {
    run.data = journal_data(data);
    run
}

/// The JSON text of [`journal_data`] (serde_json's compact form: `journal_data(data)
/// .to_string()`), written straight from `data` (src/state/json_text.rs), with no
/// `serde_json::Value` in between: that tree (an allocation per key and string, a hashed insert
/// per key) and its printing were ≈12,000 instructions of a durable run (docs/state.md,
/// "Performance"). Numbers, escapes and key order are serde_json's;
/// `journal_text_is_the_text_of_journal_data` in src/state/tests.rs compares the two over
/// generated values.
pub fn journal_text(data: &crate::Value) -> String {
    let mut out = String::with_capacity(256);
    super::json_text::request_data(&mut out, data);
    out
}

/// The JSON text of `run` ([`RunRecord::to_text`]) with `data` journaled as its request data:
/// the text of `run` with `run.data = journal_data(data)`, written in one pass straight from
/// `data` (src/state/json_text.rs, no `serde_json::Value` in between; `run.data` is not used).
/// `record_text_is_the_text_of_the_record_with_journal_data` in src/state/tests.rs compares the
/// two over generated records and data.
pub fn record_text(run: &RunRecord, data: &crate::Value) -> String {
    let mut out = String::with_capacity(512);
    super::json_text::record(&mut out, run, data, false);
    out
}

/// The Redis backend's `rec` field of a new run, appended to `out`: [`record_text`] of the
/// record *as accepted* — status `queued`, no times, no error, no steps. A run journaled with
/// the steps it ran first (src/listener/workflow.rs, `run_prefix`) keeps those, its times and
/// its status as hash fields only, as a run's later events leave them
/// (`a_request_run_leaves_the_hash_create_run_left` and
/// `a_run_journaled_finished_leaves_what_its_creation_and_end_leave` in
/// src/state/redis_tests.rs compare the hashes with the previous paths).
pub fn write_accepted_text(run: &RunRecord, data: &crate::Value, out: &mut Vec<u8>) {
    let mut text = String::with_capacity(512);
    super::json_text::record(&mut text, run, data, true);
    out.extend_from_slice(text.as_bytes());
}
