//! `[[endpoint.step]]` tables → [`Step`]s forming a tree (docs/listener.md "Workflows"), plus the
//! "never responds" warning for `continue` endpoints.

use super::endpoint::template;
use super::fields::{Fields, Source};
use super::{script_error, Answer, Diagnostic};
use crate::{Engine, Expression, Template};
use toml_edit::Item;

/// Largest `delay_ms`: 30 days (delays are durable: stored as a due time).
pub const MAX_DELAY_MS: u64 = 30 * 24 * 3_600_000;

/// Largest `max_response_bytes` (a step's or the server's): 256 MiB.
pub const MAX_RESPONSE_BYTES_LIMIT: u64 = 256 << 20;

/// Which child list of a `condition` a step belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// Run when the condition holds (`branch = "yes"`).
    Yes,
    /// Run when it does not (`branch = "no"`).
    No,
}

/// A condition operator (docs/listener.md "Workflows").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `equal`: the operands are equal (as numbers, dates or strings).
    Equal,
    /// `not_equal`.
    NotEqual,
    /// `greater`: left > right.
    Greater,
    /// `greater_or_equal`.
    GreaterOrEqual,
    /// `less`: left < right.
    Less,
    /// `less_or_equal`.
    LessOrEqual,
    /// `greater_than_now`: left is a date (or timestamp) after now.
    GreaterThanNow,
    /// `less_than_now`: left is a date (or timestamp) before now.
    LessThanNow,
    /// `between`: right ≤ left ≤ right2.
    Between,
    /// `contains`: right is a substring of left (case-sensitive).
    Contains,
    /// `not_contains`.
    NotContains,
    /// `begins_with`.
    BeginsWith,
    /// `not_begins_with`.
    NotBeginsWith,
    /// `ends_with`.
    EndsWith,
    /// `not_ends_with`.
    NotEndsWith,
    /// `is_empty` (or `empty`): left is blank after trimming.
    IsEmpty,
    /// `is_not_empty` (or `not_empty`).
    IsNotEmpty,
}

impl Operator {
    /// The operator named `s` in the file; `None` for an unknown name.
    pub fn parse(s: &str) -> Option<Operator> {
        use Operator::*;
        Some(match s {
            "equal" => Equal,
            "not_equal" => NotEqual,
            "greater" => Greater,
            "greater_or_equal" => GreaterOrEqual,
            "less" => Less,
            "less_or_equal" => LessOrEqual,
            "greater_than_now" => GreaterThanNow,
            "less_than_now" => LessThanNow,
            "between" => Between,
            "contains" => Contains,
            "not_contains" => NotContains,
            "begins_with" => BeginsWith,
            "not_begins_with" => NotBeginsWith,
            "ends_with" => EndsWith,
            "not_ends_with" => NotEndsWith,
            "is_empty" | "empty" => IsEmpty,
            "is_not_empty" | "not_empty" => IsNotEmpty,
            _ => return None,
        })
    }
    /// Whether the operator reads `right`.
    fn needs_right(self) -> bool {
        !matches!(
            self,
            Operator::GreaterThanNow
                | Operator::LessThanNow
                | Operator::IsEmpty
                | Operator::IsNotEmpty
        )
    }
}

/// `value` (template → string) or `expression` (→ typed value).
#[derive(Clone, Debug)]
pub enum ValueSource {
    /// `value`: a template, rendered to a string.
    Template(Template),
    /// `expression`: an expression, evaluated to a typed value.
    Expression(Expression),
}

/// What a step does.
#[derive(Clone, Debug)]
pub enum StepKind {
    /// `condition`: runs its `yes` or `no` children.
    Condition {
        /// The left operand.
        left: Template,
        /// The comparison.
        operator: Operator,
        /// The right operand (absent for the operators that do not read it).
        right: Option<Template>,
        /// The upper bound of `between`.
        right2: Option<Template>,
    },
    /// `store`: sets a (dotted) name in the run's data.
    Store {
        /// The dotted name.
        name: String,
        /// What is stored.
        value: ValueSource,
    },
    /// `respond`: the answer of an `async` `continue` request.
    Respond(Answer),
    /// `emit`: one server-sent event.
    Emit {
        /// The event's data.
        data: Template,
        /// The event's name (plain text).
        event: Option<String>,
        /// Whether the stream ends after it.
        is_final: bool,
    },
    /// `webhook`: an outbound HTTP call.
    Webhook {
        /// The HTTP method.
        method: String,
        /// The destination (checked by the guard).
        url: Template,
        /// Request headers, values rendered.
        headers: Vec<(String, Template)>,
        /// The request body.
        body: Option<Template>,
        /// Time limit of one attempt, in ms.
        timeout_ms: u64,
        /// Further attempts after a transport error, a timeout or a 5xx.
        retries: u32,
        /// Response body cap; `None`: `[server] webhook_max_response_bytes`.
        max_response_bytes: Option<u64>,
        /// Standard Webhooks signing secret (a settings field: `env()`, no request data).
        sign_secret: Option<Template>,
    },
    /// `set_memory`: writes the shared store.
    SetMemory {
        /// The key.
        name: String,
        /// What is written.
        value: ValueSource,
        /// Time to live in seconds (default 3600).
        ttl_s: u64,
    },
    /// `log`: one log line.
    Log {
        /// The line's message.
        message: Template,
    },
}

impl StepKind {
    /// The step's `type`.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Condition { .. } => "condition",
            StepKind::Store { .. } => "store",
            StepKind::Respond(_) => "respond",
            StepKind::Emit { .. } => "emit",
            StepKind::Webhook { .. } => "webhook",
            StepKind::SetMemory { .. } => "set_memory",
            StepKind::Log { .. } => "log",
        }
    }
}

/// One workflow step.
#[derive(Clone, Debug)]
pub struct Step {
    /// The step's `id` (unique within the endpoint).
    pub id: String,
    /// Index of the parent step; `None` for a root.
    pub parent: Option<usize>,
    /// The branch of the parent `condition` it runs on.
    pub branch: Option<Branch>,
    /// Wait before the step runs, in ms (a durable timer).
    pub delay_ms: u64,
    /// What the step does.
    pub kind: StepKind,
}

fn value_source(f: &mut Fields<'_>, engine: &Engine) -> Option<ValueSource> {
    let has_value = f.table.contains_key("value");
    let has_expr = f.table.contains_key("expression");
    match (has_value, has_expr) {
        (true, false) => template(f, engine, "value").map(ValueSource::Template),
        (false, true) => {
            let src = f.string("expression")?;
            match engine.compile_expression(&f.path("expression"), &src) {
                Ok(e) => Some(ValueSource::Expression(e)),
                Err(e) => {
                    f.error("expression", script_error(&e));
                    None
                }
            }
        }
        (true, true) => {
            f.item("value");
            f.item("expression");
            f.error("expression", "give either value or expression, not both");
            None
        }
        (false, false) => {
            f.error("value", "value or expression is required");
            None
        }
    }
}

fn name_field(f: &mut Fields<'_>) -> Option<String> {
    let name = f.required("name")?;
    let ok = !name.is_empty()
        && !name.starts_with("__")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if ok {
        Some(name)
    } else {
        f.error(
            "name",
            "must be letters, digits, `_`, `.` or `-` and not start with `__`",
        );
        None
    }
}

fn read_kind(f: &mut Fields<'_>, engine: &Engine, ty: &str) -> Option<StepKind> {
    match ty {
        "condition" => {
            let left = template(f, engine, "left");
            if !f.table.contains_key("left") {
                f.required("left");
            }
            let op_name = f.required("operator")?;
            let Some(operator) = Operator::parse(&op_name) else {
                f.error("operator", format!("unknown operator `{op_name}`"));
                return None;
            };
            let right = template(f, engine, "right");
            let right2 = template(f, engine, "right2");
            if operator.needs_right() && !f.table.contains_key("right") {
                f.error("operator", format!("`{op_name}` needs `right`"));
            }
            if operator == Operator::Between && !f.table.contains_key("right2") {
                f.error("operator", "`between` needs `right2`");
            }
            Some(StepKind::Condition {
                left: left?,
                operator,
                right,
                right2,
            })
        }
        "store" => {
            let name = name_field(f);
            let value = value_source(f, engine);
            Some(StepKind::Store {
                name: name?,
                value: value?,
            })
        }
        "set_memory" => {
            let name = f.required("name");
            let value = value_source(f, engine);
            let ttl_s = f.uint("ttl_s", 3600, 10 * 365 * 24 * 3600);
            Some(StepKind::SetMemory {
                name: name?,
                value: value?,
                ttl_s,
            })
        }
        "respond" => {
            let rt = f.required("return_type")?;
            let key = format!("return_{rt}");
            let t = match rt.as_str() {
                "data" | "html" | "redirect" => {
                    if !f.table.contains_key(&key) {
                        f.error("return_type", format!("{key} is required"));
                    }
                    template(f, engine, &key)?
                }
                _ => {
                    f.error("return_type", "must be data, html or redirect");
                    return None;
                }
            };
            Some(StepKind::Respond(match rt.as_str() {
                "data" => Answer::Data(t),
                "html" => Answer::Html(t),
                _ => Answer::Redirect(t),
            }))
        }
        "emit" => {
            let data = template(f, engine, "data");
            if !f.table.contains_key("data") {
                f.required("data");
            }
            let event = f.string("event");
            if event
                .as_deref()
                .is_some_and(|e| e.is_empty() || e.contains(['\r', '\n']))
            {
                f.error("event", "must be a non-empty single line");
            }
            let is_final = f.boolean("final", false);
            Some(StepKind::Emit {
                data: data?,
                event,
                is_final,
            })
        }
        "webhook" => {
            let method = f.string("method").unwrap_or_else(|| "POST".into());
            let method = method.to_ascii_uppercase();
            if hyper::Method::from_bytes(method.as_bytes()).is_err() {
                f.error("method", "must be an HTTP method");
            }
            let url = template(f, engine, "url");
            if !f.table.contains_key("url") {
                f.required("url");
            }
            let mut headers = Vec::new();
            for (k, v) in f.string_map("headers") {
                if hyper::header::HeaderName::from_bytes(k.as_bytes()).is_err() {
                    f.error("headers", format!("`{k}` is not a valid header name"));
                    continue;
                }
                match engine.compile(&f.path(&format!("headers.{k}")), &v) {
                    Ok(t) => headers.push((k, t)),
                    Err(e) => f.error("headers", script_error(&e)),
                }
            }
            let body = template(f, engine, "body");
            let timeout_ms = f.uint("timeout_ms", 10_000, 600_000);
            let retries = f.uint("retries", 0, 10) as u32;
            let max_response_bytes = f
                .table
                .contains_key("max_response_bytes")
                .then(|| f.uint_in("max_response_bytes", 0, 1, MAX_RESPONSE_BYTES_LIMIT));
            let raw_secret = f.string("sign_secret");
            if raw_secret.as_deref().is_some_and(|r| r.trim().is_empty()) {
                f.error("sign_secret", "must not be empty");
            }
            if let Some(raw) = raw_secret
                .as_deref()
                .filter(|r| !r.contains("{{") && !r.contains("{%"))
            {
                if let Err(e) = crate::listener::signature::standard_key(raw) {
                    f.error("sign_secret", e);
                }
            }
            let sign_secret = template(f, engine, "sign_secret");
            Some(StepKind::Webhook {
                method,
                url: url?,
                headers,
                body,
                timeout_ms,
                retries,
                max_response_bytes,
                sign_secret,
            })
        }
        "log" => {
            let message = template(f, engine, "message");
            if !f.table.contains_key("message") {
                f.required("message");
            }
            Some(StepKind::Log { message: message? })
        }
        _ => {
            f.error(
                "type",
                "must be one of condition, store, respond, emit, webhook, set_memory, log",
            );
            None
        }
    }
}

/// Reads the `step` array of an endpoint (`prefix` = `endpoint[i]`).
pub fn read(
    src: &Source<'_>,
    engine: &Engine,
    item: Option<&Item>,
    prefix: &str,
    ep_line: usize,
    return_type: &str,
) -> (Vec<Step>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let tables = match item {
        None => Vec::new(),
        Some(Item::ArrayOfTables(a)) => a.iter().collect(),
        Some(_) => {
            errors.push(src.diag(
                ep_line,
                &format!("{prefix}.step"),
                "must be an array of tables ([[endpoint.step]])",
            ));
            Vec::new()
        }
    };
    let mut ok = true;
    if tables.len() > super::endpoint::MAX_STEPS {
        errors.push(src.diag(
            ep_line,
            &format!("{prefix}.step"),
            format!("at most {} steps per endpoint", super::endpoint::MAX_STEPS),
        ));
        return (steps, errors, warnings);
    }
    for (j, t) in tables.into_iter().enumerate() {
        let mut f = Fields::new(src, t, format!("{prefix}.step[{j}]"));
        let id = f.required("id").unwrap_or_default();
        if steps.iter().any(|s| s.id == id) && !id.is_empty() {
            f.error("id", format!("duplicate step id `{id}`"));
        }
        let ty = f.required("type").unwrap_or_default();
        let delay_ms = f.uint("delay_ms", 0, MAX_DELAY_MS);
        let parent = match f.string("parent") {
            Some(p) if p.is_empty() => None,
            Some(p) => match steps.iter().position(|s| s.id == p) {
                Some(i) => Some(i),
                None => {
                    f.error("parent", format!("no earlier step with id `{p}`"));
                    None
                }
            },
            None => steps.len().checked_sub(1),
        };
        let parent_is_condition = parent
            .and_then(|p| steps.get(p))
            .is_some_and(|s| matches!(s.kind, StepKind::Condition { .. }));
        let branch = match f.string("branch").as_deref() {
            None => None,
            Some("yes") => Some(Branch::Yes),
            Some("no") => Some(Branch::No),
            Some(_) => {
                f.error("branch", "must be \"yes\" or \"no\"");
                None
            }
        };
        if parent_is_condition && branch.is_none() && !f.table.contains_key("branch") {
            f.error(
                "branch",
                "a child of a condition needs branch = \"yes\" or \"no\"",
            );
        }
        if !parent_is_condition && f.table.contains_key("branch") {
            f.error("branch", "only children of a condition take a branch");
        }
        let kind = if ty.is_empty() {
            None
        } else {
            read_kind(&mut f, engine, &ty)
        };
        if (ty == "respond" && return_type != "continue") || (ty == "emit" && return_type != "sse")
        {
            warnings.push(src.diag(
                f.line_of("type"),
                &f.path("type"),
                format!("a {ty} step is ignored on a \"{return_type}\" endpoint"),
            ));
        }
        let errs = f.finish(&[]);
        ok &= errs.is_empty();
        errors.extend(errs);
        // A step with errors keeps its place (as a no-op) so later `parent` references resolve;
        // the endpoint is refused anyway.
        let kind = match kind {
            Some(k) => k,
            None => match engine.compile("placeholder", "") {
                Ok(message) => StepKind::Log { message },
                Err(e) => {
                    errors.push(src.diag(ep_line, prefix, script_error(&e)));
                    break;
                }
            },
        };
        steps.push(Step {
            id,
            parent,
            branch,
            delay_ms,
            kind,
        });
    }
    if ok && return_type == "continue" {
        no_response_warnings(src, &steps, prefix, ep_line, &mut warnings);
    }
    (steps, errors, warnings)
}

/// Warns about every path from a root to a leaf (or to an empty condition branch) without a
/// `respond` step.
fn no_response_warnings(
    src: &Source<'_>,
    steps: &[Step],
    prefix: &str,
    ep_line: usize,
    warnings: &mut Vec<Diagnostic>,
) {
    let field = format!("{prefix}.step");
    if steps.is_empty() {
        warnings.push(src.diag(
            ep_line,
            &field,
            "continue endpoint without a respond step never responds",
        ));
        return;
    }
    let responds = |i: usize| {
        let mut cur = Some(i);
        while let Some(c) = cur {
            if matches!(steps[c].kind, StepKind::Respond(_)) {
                return true;
            }
            cur = steps[c].parent;
        }
        false
    };
    for (i, s) in steps.iter().enumerate() {
        let kids: Vec<&Step> = steps.iter().filter(|c| c.parent == Some(i)).collect();
        let ends: Vec<String> = if let StepKind::Condition { .. } = s.kind {
            [(Branch::Yes, "yes"), (Branch::No, "no")]
                .into_iter()
                .filter(|(b, _)| !kids.iter().any(|k| k.branch == Some(*b)))
                .map(|(_, n)| format!("the `{n}` branch of step `{}`", s.id))
                .collect()
        } else if kids.is_empty() {
            vec![format!("the branch ending at step `{}`", s.id)]
        } else {
            Vec::new()
        };
        if !ends.is_empty() && !responds(i) {
            for e in ends {
                warnings.push(src.diag(ep_line, &field, format!("{e} never responds")));
            }
        }
    }
}
