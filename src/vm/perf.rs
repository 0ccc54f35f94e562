//! A quick comparison with minijinja (run: `cargo test --release --lib perf -- --ignored --nocapture`).
//! The real benches live in benches/; this only guards against gross regressions.

use crate::Engine;
use serde_json::json;
use std::time::Instant;

const TABLE: &str = "<table>{% for row in table %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>{% endfor %}</table>";
const TEAMS: &str = "<html><head><title>{{ year }}</title></head><body><h1>CSS {{ year }}</h1><ul>{% for team in teams %}<li class=\"{% if loop.first %}champion{% endif %}\"><b>{{ team.name }}</b>: {{ team.score }}</li>{% endfor %}</ul></body></html>";

fn time<F: FnMut()>(n: u32, mut f: F) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() / n as f64 * 1e6
}

#[test]
#[ignore]
fn perf_vs_minijinja() {
    let table: Vec<Vec<i64>> = (0..100)
        .map(|r| (0..100).map(|c| r * 100 + c).collect())
        .collect();
    let ctx_table = json!({ "table": table });
    let ctx_teams = json!({"year": 2015, "teams": [
        {"name": "Jiangsu", "score": 43}, {"name": "Beijing", "score": 27},
        {"name": "Guangzhou", "score": 22}, {"name": "Shandong", "score": 12}]});
    let engine = Engine::new();
    let mut mj = minijinja::Environment::new();
    mj.add_template("table", TABLE).unwrap();
    mj.add_template("teams", TEAMS).unwrap();
    for (name, src, ctx, n) in [
        ("table", TABLE, &ctx_table, 300),
        ("teams", TEAMS, &ctx_teams, 20000),
    ] {
        let t = engine.compile(name, src).unwrap();
        let v = crate::Value::from(ctx);
        let ours = time(n, || {
            std::hint::black_box(t.render_value(&v, Default::default()).unwrap());
        });
        let mt = mj.get_template(name).unwrap();
        let mv = minijinja::Value::from_serialize(ctx);
        let theirs = time(n, || {
            std::hint::black_box(mt.render(&mv).unwrap());
        });
        assert_eq!(
            t.render_value(&v, Default::default()).unwrap(),
            mt.render(&mv).unwrap()
        );
        let c_ours = time(n / 10 + 1, || {
            std::hint::black_box(engine.compile(name, src).unwrap());
        });
        let c_theirs = time(n / 10 + 1, || {
            let mut e = minijinja::Environment::new();
            e.add_template_owned(name.to_string(), src.to_string())
                .unwrap();
            std::hint::black_box(e);
        });
        let c_parse = time(n / 10 + 1, || {
            std::hint::black_box(crate::syntax::parse_template(name, src, 128).unwrap());
        });
        println!("{name}: parse only {c_parse:.1}µs");
        println!(
            "{name}: render {ours:.1}µs vs minijinja {theirs:.1}µs ({:.2}x); compile {c_ours:.1}µs vs {c_theirs:.1}µs ({:.2}x)",
            ours / theirs,
            c_ours / c_theirs
        );
    }
}
