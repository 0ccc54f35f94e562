//! Template inheritance cost (docs/templates.md): a child template extending a three-level
//! layout chain against the same output written flat, and the compile time of a library of
//! 200 templates. Run with `cargo bench --bench inheritance`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use flexscript::{Engine, MapLoader, RenderOptions, Value};
use serde_json::json;

const BASE: &str = "<html><head><title>{% block title %}Site{% endblock %}</title></head><body>{% block body %}{% endblock %}<footer>{% block footer %}(c) {{ year }}{% endblock %}</footer></body></html>";
const SECTION: &str = "{% extends 'base.html' %}{% block body %}<nav>{% block nav %}home{% endblock %}</nav><main>{% block main %}{% endblock %}</main>{% endblock %}";
const PAGE: &str = "{% extends 'section.html' %}{% block title %}{{ year }} · {{ parent() }}{% endblock %}{% block nav %}{{ parent() }} / teams{% endblock %}";
const CHILD: &str = "{% extends 'page.html' %}{% block main %}<ul>{% for team in teams %}<li class=\"{% if loop.first %}champion{% endif %}\"><b>{{ team.name }}</b>: {{ team.score }}</li>{% endfor %}</ul>{% endblock %}";
const FLAT: &str = "<html><head><title>{{ year }} · Site</title></head><body><nav>home / teams</nav><main><ul>{% for team in teams %}<li class=\"{% if loop.first %}champion{% endif %}\"><b>{{ team.name }}</b>: {{ team.score }}</li>{% endfor %}</ul></main><footer>(c) {{ year }}</footer></body></html>";

fn context() -> Value {
    Value::from(&json!({
        "year": 2015,
        "teams": [
            {"name": "Jiangsu", "score": 43},
            {"name": "Beijing", "score": 27},
            {"name": "Guangzhou", "score": 22},
            {"name": "Shandong", "score": 12},
        ]
    }))
}

fn library() -> MapLoader {
    MapLoader::from_pairs([
        ("base.html", BASE),
        ("section.html", SECTION),
        ("page.html", PAGE),
        ("child.html", CHILD),
    ])
    .expect("names")
}

fn render(c: &mut Criterion) {
    let mut engine = Engine::new();
    engine.set_loader(library());
    let chain = engine.get_template("child.html").expect("child compiles");
    let flat = engine.compile("flat", FLAT).expect("flat compiles");
    let ctx = context();
    let opts = RenderOptions::default();
    let a = chain.render_value(&ctx, opts).expect("chain renders");
    let b = flat.render_value(&ctx, opts).expect("flat renders");
    assert_eq!(a, b, "the chain and the flat page must print the same");
    let mut g = c.benchmark_group("inheritance");
    g.bench_function("flat", |bench| {
        bench.iter(|| flat.render_value(black_box(&ctx), opts))
    });
    g.bench_function("three-level-chain", |bench| {
        bench.iter(|| chain.render_value(black_box(&ctx), opts))
    });
    g.finish();
}

/// 200 templates: 10 layouts, each extended by 19 pages that include a partial and import macros.
fn big_library() -> Vec<(String, String)> {
    let mut v = vec![(
        "macros.html".to_string(),
        "{% macro badge(t, cls = 'b') %}<span class=\"{{ cls }}\">{{ t|upper }}</span>{% endmacro %}".to_string(),
    )];
    for l in 0..10 {
        v.push((
            format!("layouts/l{l}.html"),
            format!("<html><title>{{% block title %}}L{l}{{% endblock %}}</title><body>{{% block body %}}{{% endblock %}}</body></html>"),
        ));
        for p in 0..19 {
            if v.len() >= 200 {
                break;
            }
            v.push((
                format!("pages/l{l}/p{p}.html"),
                format!("{{% extends 'layouts/l{l}.html' %}}{{% import 'macros.html' as m %}}{{% block title %}}P{p} {{{{ parent() }}}}{{% endblock %}}{{% block body %}}{{% for x in items %}}{{{{ m.badge(x.name) }}}}{{% if x.score > {p} %}}{{{{ x.score|number_format(2) }}}}{{% endif %}}{{% endfor %}}{{% include 'layouts/l{l}.html' ignore missing only %}}{{% endblock %}}"),
            ));
        }
    }
    v
}

fn compile(c: &mut Criterion) {
    let lib = big_library();
    assert_eq!(lib.len(), 200);
    let mut g = c.benchmark_group("compile");
    g.sample_size(20);
    g.bench_function("library-200", |bench| {
        bench.iter(|| {
            let mut engine = Engine::new();
            engine.set_loader(
                MapLoader::from_pairs(lib.iter().map(|(n, s)| (n.as_str(), s.as_str())))
                    .expect("names"),
            );
            for (n, _) in &lib {
                engine.get_template(n).expect("compiles");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, render, compile);
criterion_main!(benches);
