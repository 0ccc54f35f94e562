//! Render and compile speed of flexscript against minijinja 2 and tera 1 on the same data, in the
//! same run (issue: render ≤ 0.5× the faster peer, compile ≤ 4× minijinja).
//!
//! Workloads:
//! - `table`: a 100×100 table of integers through two nested `for` loops;
//! - `teams`: a small page looping over 4 teams with `loop.first` and attribute access;
//! - `compile/teams`: parse + compile of the `teams` page;
//! - `teams-from-json`: the `teams` page rendered from a `serde_json::Value` each call (the
//!   engine converts the context every time, as a host that does not keep values does);
//! - `teams-from-value`: flexscript's `render(&flexscript::Value)` (must not re-serialise);
//! - `engine-new`: a fresh environment with every builtin.
//!
//! Every engine renders without autoescaping (template names without `.html`); in `table` and
//! `teams` from a context converted once, so the loop measures rendering only. Run with
//! `cargo bench --bench render`; the last lines printed are flexscript ÷ each peer per row.

use criterion::{black_box, criterion_group, Criterion};
use serde_json::{json, Value as Json};

const TABLE: &str = "<table>{% for row in table %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>";

// No newline directly after a block tag: Twig and flexscript drop it, minijinja and tera keep it.
const TEAMS: &str = r#"<html>
  <head><title>{{ year }}</title></head>
  <body>
    <h1>CSL {{ year }}</h1>
    <ul>
      {% for team in teams %}<li class="{% if loop.first %}champion{% endif %}"><b>{{ team.name }}</b>: {{ team.score }}</li>
      {% endfor %}</ul>
  </body>
</html>"#;

/// Builtins in a hot loop (argument conversion of every call): filters the three engines share.
const FILTERS: &str = "{% for n in names %}{{ n|upper }}{{ n|lower|capitalize }}{{ n|trim|length }}{{ n|title }}{% endfor %}";

fn filters_context() -> Json {
    let names: Vec<String> = (0..200).map(|i| format!(" team{i} fc ")).collect();
    json!({ "names": names })
}

fn table_context() -> Json {
    let table: Vec<Vec<i64>> = (0..100).map(|_| (0..100).collect()).collect();
    json!({ "table": table })
}

fn teams_context() -> Json {
    json!({
        "year": 2015,
        "teams": [
            {"name": "Jiangsu", "score": 43},
            {"name": "Beijing", "score": 27},
            {"name": "Guangzhou", "score": 22},
            {"name": "Shandong", "score": 12},
        ]
    })
}

/// Renders `source` with each engine under `group/engine`, after checking that all three agree.
fn render_group(c: &mut Criterion, group: &str, source: &str, ctx: &Json) {
    let engine = flexscript::Engine::new();
    let flex = engine
        .compile(group, source)
        .expect("flexscript compiles the bench template");
    let flex_ctx = flexscript::Value::from(ctx.clone());
    let opts = flexscript::RenderOptions::default();

    let mut mini_env = minijinja::Environment::new();
    mini_env
        .add_template(group, source)
        .expect("minijinja compiles the bench template");
    let mini = mini_env.get_template(group).expect("template was added");
    let mini_ctx = minijinja::Value::from_serialize(ctx);

    let mut tera = tera::Tera::default();
    tera.add_raw_template(group, source)
        .expect("tera compiles the bench template");
    let tera_ctx = tera::Context::from_value(ctx.clone()).expect("context is an object");

    let a = flex
        .render_value(&flex_ctx, opts)
        .expect("flexscript renders");
    let b = mini.render(&mini_ctx).expect("minijinja renders");
    let t = tera.render(group, &tera_ctx).expect("tera renders");
    assert_eq!(a, b, "flexscript and minijinja disagree on {group}");
    assert_eq!(a, t, "flexscript and tera disagree on {group}");

    let mut g = c.benchmark_group(group);
    g.bench_function("flexscript", |bench| {
        bench.iter(|| flex.render_value(black_box(&flex_ctx), opts))
    });
    g.bench_function("minijinja", |bench| {
        bench.iter(|| mini.render(black_box(&mini_ctx)))
    });
    g.bench_function("tera", |bench| {
        bench.iter(|| tera.render(group, black_box(&tera_ctx)))
    });
    g.finish();
}

/// The `teams` page rendered from an unconverted context on every call.
fn from_context(c: &mut Criterion) {
    let ctx = teams_context();
    let engine = flexscript::Engine::new();
    let flex = engine.compile("teams", TEAMS).expect("compiles");
    let flex_value = flexscript::Value::from(ctx.clone());
    let mut mini_env = minijinja::Environment::new();
    mini_env.add_template("teams", TEAMS).expect("compiles");
    let mini = mini_env.get_template("teams").expect("added");
    let mut tera = tera::Tera::default();
    tera.add_raw_template("teams", TEAMS).expect("compiles");
    assert_eq!(
        flex.render(&ctx).expect("renders"),
        mini.render(&ctx).expect("renders")
    );

    let mut g = c.benchmark_group("teams-from-json");
    g.bench_function("flexscript", |b| b.iter(|| flex.render(black_box(&ctx))));
    g.bench_function("minijinja", |b| b.iter(|| mini.render(black_box(&ctx))));
    g.bench_function("tera", |b| {
        b.iter(|| {
            let cx = tera::Context::from_serialize(black_box(&ctx)).expect("object");
            tera.render("teams", &cx)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("teams-from-value");
    g.bench_function("flexscript", |b| {
        b.iter(|| flex.render(black_box(&flex_value)))
    });
    let mini_value = minijinja::Value::from_serialize(&ctx);
    g.bench_function("minijinja", |b| {
        b.iter(|| mini.render(black_box(&mini_value)))
    });
    g.finish();
}

fn engine_new(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine-new");
    g.bench_function("flexscript", |b| b.iter(flexscript::Engine::new));
    g.bench_function("minijinja", |b| b.iter(minijinja::Environment::new));
    g.bench_function("tera", |b| b.iter(tera::Tera::default));
    g.finish();
}

fn render(c: &mut Criterion) {
    render_group(c, "table", TABLE, &table_context());
    render_group(c, "teams", TEAMS, &teams_context());
    render_group(c, "filters", FILTERS, &filters_context());
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile/teams");
    let engine = flexscript::Engine::new();
    g.bench_function("flexscript", |bench| {
        bench.iter(|| engine.compile("teams", black_box(TEAMS)))
    });
    g.bench_function("minijinja", |bench| {
        let mut env = minijinja::Environment::new();
        bench.iter(|| env.add_template("teams", black_box(TEAMS)).map(|_| ()))
    });
    g.bench_function("tera", |bench| {
        let mut tera = tera::Tera::default();
        bench.iter(|| tera.add_raw_template("teams", black_box(TEAMS)))
    });
    g.finish();
}

/// Prints flexscript's median ÷ each peer's median for every group measured in this run
/// (criterion keeps its estimates under `target/criterion/<group>/<engine>/new/`).
fn print_ratios() {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("criterion");
    let median = |group: &str, engine: &str| -> Option<f64> {
        let path = dir.join(group).join(engine).join("new/estimates.json");
        let text = std::fs::read_to_string(path).ok()?;
        let v: Json = serde_json::from_str(&text).ok()?;
        v["median"]["point_estimate"].as_f64()
    };
    println!("\nflexscript ÷ peer (median times, this run):");
    let groups = [
        "table",
        "teams",
        "filters",
        "teams-from-json",
        "teams-from-value",
        "compile_teams",
        "engine-new",
    ];
    for group in groups {
        let Some(flex) = median(group, "flexscript") else {
            continue;
        };
        let mut line = format!("  {group:<18} flexscript {:>10.1} ns", flex);
        for peer in ["minijinja", "tera"] {
            if let Some(p) = median(group, peer) {
                line.push_str(&format!("   {peer} {p:>10.1} ns ({:.2}×)", flex / p));
            }
        }
        println!("{line}");
    }
}

criterion_group!(benches, render, from_context, compile, engine_new);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    print_ratios();
}
