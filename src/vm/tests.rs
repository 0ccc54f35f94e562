//! End-to-end tests of the language through the public API.

use crate::{Engine, ErrorKind, Escape, Limits, RenderOptions, Template};
use serde_json::json;

fn render(src: &str, ctx: serde_json::Value) -> String {
    match Engine::new().compile("test", src) {
        Ok(t) => t.render(&ctx).unwrap_or_else(|e| panic!("{src}: {e}")),
        Err(e) => panic!("{src}: {e}"),
    }
}

/// An engine whose template library holds `pairs` (name → source).
fn library<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Engine {
    let mut engine = Engine::new();
    engine.set_loader(crate::MapLoader::from_pairs(pairs).expect("names"));
    engine
}

/// Template `name` of `engine`'s library rendered with `ctx` (a panic naming it on an error).
fn render_named(engine: &Engine, name: &str, ctx: serde_json::Value) -> String {
    let t = engine.get_template(name).expect(name);
    t.render(&ctx).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn error(src: &str, ctx: serde_json::Value, strict: bool) -> crate::Error {
    let mut engine = Engine::new();
    engine.set_strict(strict);
    match engine.compile("test", src) {
        Ok(t) => t.render(&ctx).expect_err(src),
        Err(e) => e,
    }
}

#[test]
fn template_is_send_sync_and_cheap() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Template>();
    assert_send_sync::<crate::Expression>();
}

#[test]
fn literals_and_operators() {
    let cases = [
        (
            "{{ 6 / 3 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }}",
            "2 3.5 3 -1 1024",
        ),
        (
            "{{ \"3\" + 4 }} {{ 0.1 + 0.2 }} {{ 9223372036854775807 + 1 }}",
            "7 0.3 9.2233720368548E+18",
        ),
        ("{{ -5 | length }} {{ -2 ** 2 }} {{ not 0 }}", "2 -4 1"),
        ("{{ (1..3)|join(',') }} {{ ('a'..'c')|join }}", "1,2,3 abc"),
        (
            "{{ {a: 1, 'b': 2, (1 + 1): 3, c}|json_encode }}",
            r#"{"a":1,"b":2,"2":3,"c":null}"#,
        ),
        (
            "{{ [1, 2, 3,][1:]|json_encode }} {{ 'hello'[1:3] }} {{ 'hello'[:2] }}",
            "[2,3] ell he",
        ),
        ("{{ \"x #{1 + 2} y\" }} {{ 'it\\'s' }}", "x 3 y it's"),
        ("{{ TRUE }}{{ None is null }}{{ 1e3 }}", "111000"),
        (
            "{{ x ?? 'd' }} {{ '' ?: 'e' }} {{ true ? 't' }}|{{ false ? 't' }}|",
            "d e t||",
        ),
        ("{{ null ?? 1 == 1 }}", "1"),
        (
            "{{ 'abc' matches '/^A/i' }}{{ 'abc' starts with 'ab' }}{{ 'abc' ends with 'bc' }}",
            "111",
        ),
        (
            "{{ 2 in [1, 2] }}{{ 'b' in 'abc' }}{{ 3 not in [1] }}{{ '1' == '01' }}",
            "1111",
        ),
        (
            "{{ [1, 2, 3] has some v => v > 2 }}|{{ [1, 2, 3] has every v => v > 2 }}|",
            "1||",
        ),
        (
            "{{ 5 b-and 3 }} {{ 5 b-or 3 }} {{ 5 b-xor 3 }} {{ 1 <=> 2 }}",
            "1 7 6 -1",
        ),
        ("{{ true and 0 }}|{{ 0 or 'x' }}", "|1"),
        ("{{ [1, 2] ~ 'x' }}", "[1,2]x"),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, json!({})), want, "{src}");
    }
}

#[test]
fn whitespace_control() {
    let src = "a\n{% if true %}\nb\n{% endif %}\nc {{- ' d ' -}} e{# c #}\nz  {{~ 1 ~}}  \n y";
    assert_eq!(render(src, json!({})), "a\nb\nc d ez1\n y");
    assert_eq!(
        render("{% verbatim %}{{ x }}{% endverbatim %}", json!({})),
        "{{ x }}"
    );
    assert_eq!(render("{{ \"}}\" }}", json!({})), "}}");
}

#[test]
fn tags() {
    let cases = [
        ("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}x{{ a }}{% endset %}{{ c }}", "12x1"),
        ("{% for k, v in {a: 1, b: 2} %}{{ k }}={{ v }};{% endfor %}", "a=1;b=2;"),
        ("{% for x in [] %}x{% else %}empty{% endfor %}", "empty"),
        ("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% elseif x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}", "13"),
        ("{% for a in [1,2] %}{% for b in [1,2] %}{{ loop.parent.loop.index }}{{ loop.index }} {% endfor %}{% endfor %}", "11 12 21 22 "),
        ("{% for i in 1..3 %}{{ loop.revindex }}{{ loop.first ? 'F' }}{{ loop.last ? 'L' }}{% endfor %}", "3F21L"),
        ("{% for x in [1] %}{% set inner = 5 %}{% endfor %}{{ inner is defined ? 'yes' : 'no' }}", "no"),
        ("{% set t = 0 %}{% for x in [1,2,3] %}{% set t = t + x %}{% endfor %}{{ t }}", "6"),
        ("{% set x = 'out' %}{% for x in [1] %}{% endfor %}{{ x }}", "out"),
        ("{% with {a: 1} %}{{ a }}{% set z = 1 %}{% endwith %}{{ a }}{{ z }}", "1"),
        ("{% apply upper %}hello {{ 'x' }}{% endapply %}", "HELLO X"),
        ("{% set b = '<b>' %}{% autoescape 'html' %}{{ b }}{% endautoescape %}{% autoescape false %}{{ b }}{% endautoescape %}", "&lt;b&gt;<b>"),
        ("{% do 1 + 2 %}ok", "ok"),
        ("{% macro hi(name, greeting = 'Hello') %}{{ greeting }} {{ name }}!{% endmacro %}{% import _self as m %}{{ m.hi('Bob') }} {{ m.hi('Al', greeting: 'Yo') }}", "Hello Bob! Yo Al!"),
        ("{% from _self import hi as h %}{% macro hi(n) %}<{{ n }}>{% endmacro %}{{ h(1) }}", "<1>"),
        ("{{ [3, 1]|join(', ') }}{% for x in 5 %}never{% endfor %}", "3, 1"),
    ];
    for (src, want) in cases {
        assert_eq!(render(src, json!({})), want, "{src}");
    }
    assert_eq!(
        render(
            "{% with {a: 1} only %}{{ a }}{{ b }}{% endwith %}{{ b }}",
            json!({"b": 2})
        ),
        "12"
    );
    assert_eq!(
        render(
            "{% for i in 1..2 %}{% set b = i %}{% endfor %}{{ b }}",
            json!({"b": 0})
        ),
        "2"
    );
}

#[test]
fn snippets_include_and_import() {
    let mut engine = Engine::new();
    engine
        .add_snippet("footer", "<p>{{ company }}{{ extra }}</p>")
        .unwrap();
    engine
        .add_snippet("macros", "{% macro b(x) %}[{{ x }}]{% endmacro %}")
        .unwrap();
    let t = engine
        .compile(
            "t",
            "{% set company = 'Acme' %}{% include 'footer' %}{% include 'footer' with {extra: '!'} only %}{% include 'nope' ignore missing %}{% import 'macros' as m %}{{ m.b(1) }}{% from 'macros' import b %}{{ b(2) }}",
        )
        .unwrap();
    assert_eq!(t.render(&json!({})).unwrap(), "<p>Acme</p><p>!</p>[1][2]");
    let e = engine
        .compile("t", "{% include 'nope' %}")
        .unwrap()
        .render(&json!({}))
        .unwrap_err();
    assert!(e.to_string().contains("template `nope` not found"), "{e}");
}

#[test]
fn autoescape_option() {
    let t = Engine::new()
        .compile(
            "t",
            "{{ a }}|{{ a|raw }}|{{ a|e }}|{{ a|json_encode }}|{{ n }}",
        )
        .unwrap();
    let opts = RenderOptions::default().with_escape(Escape::Html);
    assert_eq!(
        t.render_with(&json!({"a": "<i>", "n": 5}), opts).unwrap(),
        "&lt;i&gt;|<i>|&lt;i&gt;|&quot;&lt;i&gt;&quot;|5"
    );
}

#[test]
fn errors_name_the_place() {
    let e = error("{{ x | uper }}", json!({}), false);
    assert_eq!(e.kind(), ErrorKind::UnknownName);
    let s = e.to_string();
    assert!(
        s.contains("unknown filter `uper`") && s.contains("--> test:1:8"),
        "{s}"
    );
    assert!(s.contains("did you mean `upper`?"), "{s}");
    let s = error("{% if x %}abc", json!({}), false).to_string();
    assert!(
        s.contains("expected \"endif\" to close \"if\" opened at 1:1"),
        "{s}"
    );
    let s = error("{{ 1 + {} }}", json!({}), false).to_string();
    assert!(s.contains("cannot add a map to a number"), "{s}");
    assert_eq!(
        error("{{ 1 / 0 }}", json!({}), false).kind(),
        ErrorKind::DivisionByZero
    );
    assert_eq!(
        error("{{ 1 % 0 }}", json!({}), false).kind(),
        ErrorKind::DivisionByZero
    );
    let s = error("{{ a.b() }}", json!({"a": {}}), false).to_string();
    assert!(s.contains("cannot call `a.b`"), "{s}");
    let s = error("{% foo %}", json!({}), false).to_string();
    assert!(s.contains("unknown tag `foo`"), "{s}");
    let s = error("{{ 1 + }}", json!({}), false).to_string();
    assert!(s.contains("expected an expression"), "{s}");
    let s = error("{{ 'abc' matches '/(a)\\\\1/' }}", json!({}), false).to_string();
    assert!(s.contains("backreferences"), "{s}");
    let s = error("{{ [1]|join(sepp: ',') }}", json!({}), false).to_string();
    assert!(s.contains("has no argument `sepp`"), "{s}");
}

#[test]
fn strict_mode() {
    let e = error("{{ missing }}", json!({}), true);
    assert_eq!(e.kind(), ErrorKind::Undefined);
    assert!(e.to_string().contains("variable `missing` is not defined"));
    let s = error("{{ user.nmae }}", json!({"user": {"name": 1}}), true).to_string();
    assert!(s.contains("`user.nmae` is not defined"), "{s}");
    let mut engine = Engine::new();
    engine.set_strict(true);
    let t = engine
        .compile("t", "{{ user.x is defined ? 1 : 0 }}{{ nope ?? 'd' }}{{ nope|default('z') }}{{ nope is not defined }}")
        .unwrap();
    assert_eq!(t.render(&json!({"user": {}})).unwrap(), "0dz1");
}

#[test]
fn limits_stop_runaway_templates() {
    let deep = format!("{{{{ {}1{} }}}}", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(error(&deep, json!({}), false).kind(), ErrorKind::Limit);
    let nots = format!("{{{{ {}1 }}}}", "not ".repeat(5000));
    assert_eq!(error(&nots, json!({}), false).kind(), ErrorKind::Limit);
    let ifs = format!(
        "{}{}",
        "{% if 1 %}".repeat(5000),
        "{% endif %}".repeat(5000)
    );
    assert_eq!(error(&ifs, json!({}), false).kind(), ErrorKind::Limit);
    let e = error(
        "{% for i in 1..100000 %}{% for j in 1..100 %}{% endfor %}{% endfor %}",
        json!({}),
        false,
    );
    assert!(e.to_string().contains("fuel"), "{e}");
    let e = error(
        "{% set s = 'xxxxxxxxxx' %}{% for i in 1..40 %}{% set s = s ~ s %}{% endfor %}",
        json!({}),
        false,
    );
    assert_eq!(e.kind(), ErrorKind::Limit);
    let e = error("{{ range(1, 1000000)|length }}", json!({}), false);
    assert!(e.to_string().contains("range size limit"), "{e}");
    let e = error(
        "{% macro r(n) %}{{ _self.r(n + 1) }}{% endmacro %}{{ _self.r(1) }}",
        json!({}),
        false,
    );
    assert!(e.to_string().contains("depth"), "{e}");
    let e = error(
        "{% set x = [] %}{% for i in 1..100000 %}{% set x = [x] %}{% endfor %}{{ x|json_encode }}",
        json!({}),
        false,
    );
    assert!(e.to_string().contains("value nesting"), "{e}");
    let mut engine = Engine::new();
    engine.set_limits(Limits {
        max_output: 10,
        ..Limits::default()
    });
    let e = engine
        .compile("t", "{{ 'x' }}{% for i in 1..20 %}y{% endfor %}")
        .unwrap()
        .render(&json!({}))
        .unwrap_err();
    assert!(e.to_string().contains("size limit"), "{e}");
}

#[test]
fn context_must_be_an_object_and_expressions_are_typed() {
    let t = Engine::new().compile("t", "x").unwrap();
    let e = t.render(&json!([1])).unwrap_err();
    assert!(e.to_string().contains("context must be a JSON object"));
    let engine = Engine::new();
    let x = engine
        .compile_expression("step", "a.b * 2 + (xs|length)")
        .unwrap();
    let v = x
        .eval(
            &crate::Value::from(json!({"a": {"b": 4}, "xs": [1, 2]})),
            RenderOptions::default(),
        )
        .unwrap();
    assert_eq!(v, crate::Value::Int(10));
    let m = engine
        .compile_expression("step", "{ok: xs|length > 1}")
        .unwrap();
    let v = m
        .eval(
            &crate::Value::from(json!({"xs": [1, 2]})),
            RenderOptions::default(),
        )
        .unwrap();
    assert_eq!(v.to_output(), r#"{"ok":true}"#);
}

#[test]
fn arrow_functions_reach_builtins() {
    let mut engine = Engine::new();
    engine
        .registry_mut()
        .filter("apply_each", &["arrow"], |st, a| {
            let items: Vec<crate::Value> = a[0].iter_values().cloned().collect();
            let mut out = Vec::new();
            for i in items {
                out.push(st.call(&a[1], &[i])?);
            }
            Ok(crate::Value::list(out))
        });
    let t = engine
        .compile(
            "t",
            "{% set k = 10 %}{{ [1, 2]|apply_each(x => x * k)|join(',') }}",
        )
        .unwrap();
    assert_eq!(t.render(&json!({})).unwrap(), "10,20");
}

#[test]
fn snippet_macros_call_their_own_macros() {
    let mut engine = Engine::new();
    engine
        .add_snippet(
            "ui",
            "{% macro inner(x) %}({{ x }}){% endmacro %}{% macro outer(x) %}[{{ _self.inner(x) }}]{% endmacro %}",
        )
        .unwrap();
    engine
        .add_snippet("footer", "<p>{{ company }}{{ hidden }}</p>")
        .unwrap();
    let t = engine
        .compile(
            "t",
            "{% import 'ui' as ui %}{{ ui.outer(1) }}{% macro tag(name, cls = \"x\") %}<{{ name }} class=\"{{ cls }}\">{% endmacro %}{% import _self as m %}{% set hidden = \"!\" %}{{ m.tag(\"div\") }}{% include \"footer\" with {company: \"Acme\"} only %}",
        )
        .unwrap();
    assert_eq!(
        t.render(&json!({})).unwrap(),
        "[(1)]<div class=\"x\"><p>Acme</p>"
    );
    let e = engine.compile("t", "{% import 'nope' as n %}").unwrap_err();
    assert!(e.to_string().contains("template `nope` not found"), "{e}");
}

#[test]
fn escaping_strategies_in_autoescape_blocks() {
    assert_eq!(
        render(
            "{% set v = \"a'b\" %}{% autoescape 'js' %}{{ v }}{% endautoescape %}|{{ 'a b'|e('url') }}",
            json!({})
        ),
        "a\\u0027b|a%20b"
    );
}

/// The block tables of an `extends` chain are kept in the templates after the first render
/// (src/vm/mod.rs): later renders, other children of the same parents, a child using a trait
/// and a dynamic parent must all still resolve their own blocks.
#[test]
fn kept_block_tables_stay_per_chain() {
    let engine = library([
        (
            "base",
            "[{% block a %}A{% endblock %}|{% block b %}B{% endblock %}]",
        ),
        (
            "mid",
            "{% extends 'base' %}{% block a %}m{{ parent() }}{% endblock %}",
        ),
        (
            "one",
            "{% extends 'mid' %}{% block b %}1{{ parent() }}{% endblock %}",
        ),
        (
            "two",
            "{% extends 'mid' %}{% block a %}2{{ parent() }}{% endblock %}",
        ),
        ("trait", "{% block b %}T{% endblock %}"),
        ("three", "{% extends 'mid' %}{% use 'trait' %}"),
        ("bare", "{% extends p %}"),
    ]);
    let render = |name: &str, ctx: serde_json::Value| render_named(&engine, name, ctx);
    for _ in 0..3 {
        assert_eq!(render("one", json!({})), "[mA|1B]");
        assert_eq!(render("two", json!({})), "[2mA|B]");
        assert_eq!(render("three", json!({})), "[mA|T]");
        assert_eq!(render("mid", json!({})), "[mA|B]");
        assert_eq!(render("bare", json!({"p": "one"})), "[mA|1B]");
        assert_eq!(render("bare", json!({"p": "two"})), "[2mA|B]");
        assert_eq!(render("base", json!({})), "[A|B]");
    }
}

/// A constant parent is remembered in the child after the first render (src/vm/mod.rs), but
/// only for the library that resolved it: a new loader (a reload) renders the changed parent,
/// also for a snippet child that outlives the library, and a cycle of parents still stops at
/// the depth limit.
#[test]
fn remembered_parents_never_outlive_a_reload() {
    let loader = |base: &str| {
        crate::MapLoader::from_pairs([
            ("base", base),
            (
                "mid",
                "{% extends 'base' %}{% block b %}m{{ parent() }}{% endblock %}",
            ),
            (
                "child",
                "{% extends 'mid' %}{% block b %}c{{ parent() }}{% endblock %}",
            ),
            ("x", "{% extends 'y' %}"),
            ("y", "{% extends 'x' %}"),
        ])
        .expect("names")
    };
    let mut engine = Engine::new();
    engine.set_loader(loader("1[{% block b %}B{% endblock %}]"));
    engine
        .add_snippet(
            "snip",
            "{% extends 'mid' %}{% block b %}s{{ parent() }}{% endblock %}",
        )
        .expect("snippet");
    let render = |engine: &Engine, name: &str| render_named(engine, name, json!({}));
    for _ in 0..2 {
        assert_eq!(render(&engine, "child"), "1[cmB]");
        assert_eq!(render(&engine, "snip"), "1[smB]");
    }
    let t = engine.get_template("x").expect("x");
    let e = t.render(&json!({})).expect_err("a cycle");
    assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
    engine.set_loader(loader("2<{% block b %}b{% endblock %}>"));
    for _ in 0..2 {
        assert_eq!(render(&engine, "child"), "2<cmb>");
        assert_eq!(render(&engine, "snip"), "2<smb>");
    }
}

/// A constant `extends` chain whose middle levels only extend is resolved once and its base
/// rendered at once (`ResolvedChain`, src/vm/mod.rs); every render, first or later, must print
/// what rendering level by level prints: the child's variables reach the base and its blocks,
/// a block's own variables do not leak, a middle level with a `set` (or a dynamic parent)
/// still runs, and the chain of a child that is not the library's (`embed`) too.
#[test]
fn resolved_chains_render_like_level_by_level() {
    let engine = library([
        (
            "base",
            "{% set b = 'B' %}<{{ b }}{{ c ?? '-' }}{{ m ?? '-' }}|{% block x %}x{{ b }}{{ c ?? '-' }}{% set y = 1 %}{% endblock %}|{{ y ?? 'no-leak' }}|{% block z %}z{% endblock %}>",
        ),
        (
            "mid",
            "{% extends 'base' %}{% import 'macros' as mac %}{% block x %}m{{ parent() }}{% endblock %}",
        ),
        (
            "setmid",
            "{% extends 'base' %}{% set m = 'M' %}{% block x %}s{{ parent() }}{{ m }}{% endblock %}",
        ),
        ("dynmid", "{% extends p %}"),
        ("macros", "{% macro hi() %}hi{% endmacro %}"),
        ("child", "{% extends 'mid' %}{% block z %}c{{ parent() }}{{ b ?? '-' }}{% endblock %}"),
        ("setchild", "{% set c = 'C' %}{% extends 'mid' %}"),
        ("child2", "{% extends 'setmid' %}{% block z %}2{% endblock %}"),
        ("child3", "{% extends 'dynmid' %}{% block z %}3{% endblock %}"),
        (
            "embeds",
            "[{% embed 'mid' %}{% block z %}e{{ parent() }}{% endblock %}{% endembed %}]",
        ),
    ]);
    let render = |name: &str, ctx: serde_json::Value| render_named(&engine, name, ctx);
    for _ in 0..3 {
        assert_eq!(render("child", json!({})), "<B--|mxB-|no-leak|czB>");
        assert_eq!(render("setchild", json!({})), "<BC-|mxBC|no-leak|z>");
        assert_eq!(render("child2", json!({})), "<B-M|sxB-M|no-leak|2>");
        assert_eq!(
            render("child3", json!({"p": "mid"})),
            "<B--|mxB-|no-leak|3>"
        );
        assert_eq!(
            render("child3", json!({"p": "setmid"})),
            "<B-M|sxB-M|no-leak|3>"
        );
        assert_eq!(render("embeds", json!({})), "[<B--|mxB-|no-leak|ez>]");
        assert_eq!(
            render("child", json!({"b": "ctx", "c": "k"})),
            "<Bk-|mxBk|no-leak|czB>"
        );
    }
}

/// A reload that changes a middle template of a resolved chain (from "only extends" to
/// "sets a variable", and to another parent) renders the new chain.
#[test]
fn resolved_chains_follow_a_reload_of_a_middle_template() {
    let loader = |mid: &str| {
        crate::MapLoader::from_pairs([
            ("base", "[{{ v ?? '-' }}{% block b %}B{% endblock %}]"),
            ("other", "({% block b %}O{% endblock %})"),
            ("mid", mid),
            (
                "child",
                "{% extends 'mid' %}{% block b %}c{{ parent() }}{% endblock %}",
            ),
        ])
        .expect("names")
    };
    let mut engine = Engine::new();
    let render = |engine: &Engine| render_named(engine, "child", json!({}));
    engine.set_loader(loader("{% extends 'base' %}"));
    for _ in 0..2 {
        assert_eq!(render(&engine), "[-cB]");
    }
    engine.set_loader(loader("{% extends 'base' %}{% set v = 'V' %}"));
    for _ in 0..2 {
        assert_eq!(render(&engine), "[VcB]");
    }
    engine.set_loader(loader("{% extends 'other' %}"));
    for _ in 0..2 {
        assert_eq!(render(&engine), "(cO)");
    }
}

/// Errors raised in a resolved chain name the template and line they come from (a block of
/// the child, a block of a middle level, the base's body), on the first render and after;
/// and the depth limit still names the chain when it is reached inside it.
#[test]
fn resolved_chains_locate_errors_and_count_depth() {
    let lib = [
        ("base", "<{% block a %}{% endblock %}>\n{{ 1 // (z ?? 1) }}"),
        (
            "mid",
            "{% extends 'base' %}\n{% block a %}\n{{ parent() }}{{ 1 // (y ?? 1) }}{% endblock %}",
        ),
        (
            "child",
            "{% extends 'mid' %}\n\n{% block a %}{{ parent() }}{{ 1 // (x ?? 1) }}{% endblock %}",
        ),
    ];
    let engine = library(lib);
    let t = engine.get_template("child").expect("child");
    for _ in 0..2 {
        assert_eq!(t.render(&json!({})).expect("renders"), "<11>\n1");
        for (var, name, line) in [("x", "child", 3), ("y", "mid", 3), ("z", "base", 2)] {
            let e = t.render(&json!({ var: 0 })).expect_err(var);
            assert_eq!(e.name(), Some(name), "{var}: {e}");
            assert_eq!(e.line(), Some(line), "{var}: {e}");
        }
    }
    // child → mid → base is two templates deep: a limit of 1 stops at `base`, one of 2 at
    // the first block
    let lib = [
        ("base", "<{% block a %}{% endblock %}>"),
        ("mid", "{% extends 'base' %}{% block a %}m{% endblock %}"),
        ("child", "{% extends 'mid' %}"),
    ];
    for depth in [1, 2] {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            max_depth: depth,
            ..Limits::default()
        });
        let t = engine.get_template("child").expect("child");
        for _ in 0..2 {
            let e = t.render(&json!({})).expect_err("too deep");
            assert_eq!(e.kind(), ErrorKind::Limit, "{e}");
            if depth == 1 {
                assert!(e.to_string().contains("child → mid → base"), "{e}");
            } else {
                assert!(e.to_string().contains("block `a`"), "{e}");
            }
        }
    }
}

#[test]
fn a_child_that_only_extends_keeps_its_blocks_with_or_without_a_resolved_chain() {
    // The child's own table is not built when its resolved chain will render it; when the
    // chain does not fit the depth limit it renders level by level from no table at all.
    let lib = [
        (
            "base",
            "<{% block a %}b{% endblock %}|{% block c %}c{% endblock %}>",
        ),
        (
            "mid",
            "{% extends 'base' %}{% block a %}m{{ parent() }}{% endblock %}",
        ),
        (
            "child",
            "{% extends 'mid' %}{% block a %}k{{ parent() }}{% endblock %}",
        ),
    ];
    for depth in [1, 2, 3, 8] {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            max_depth: depth,
            ..Limits::default()
        });
        let t = engine.get_template("child").expect("child");
        let first = t.render(&json!({})).map_err(|e| e.to_string());
        for _ in 0..2 {
            let again = t.render(&json!({})).map_err(|e| e.to_string());
            assert_eq!(again, first, "depth {depth}");
        }
        if depth == 8 {
            assert_eq!(first.as_deref(), Ok("<kmb|c>"), "depth {depth}");
        } else if depth < 3 {
            assert!(first.is_err(), "depth {depth}: {first:?}");
        }
    }
}

/// Blocks nested to the depth limit render on a small thread stack: the remaining stack is
/// probed only at every eighth block level (src/vm/mod.rs `render_block`), so the levels in
/// between must fit in the red zone even in a debug build. (Compiling on a small thread is
/// tested in tests/fuzz_regressions.rs, `templates_nested_to_the_depth_limit_…`.)
#[test]
fn blocks_nested_to_the_depth_limit_fit_a_small_thread_stack() {
    let depth = Limits::default().max_depth - 1;
    let mut src = String::new();
    for i in 0..depth {
        src.push_str(&format!("{{% block b{i} %}}{i}"));
    }
    for _ in 0..depth {
        src.push_str("{% endblock %}");
    }
    let t = Engine::new().compile("deep", &src).expect("compiles");
    let out = std::thread::Builder::new()
        .stack_size(320 * 1024)
        .spawn(move || t.render(&json!({})).map(|s| s.len()))
        .expect("thread")
        .join()
        .expect("no stack overflow");
    match out {
        Ok(len) => assert!(len > 0),
        // the limit may count more than one level per block: an error, never an overflow
        Err(e) => assert_eq!(e.kind(), ErrorKind::Limit, "{e}"),
    }
}

/// After the first render, a child's resolved chain is borrowed for the whole render and a
/// level's `{% block %}` tag finds its entry by index (src/vm/mod.rs `render_block_ref`): the
/// later renders must print what the first one prints, with traits (`use`), nested blocks,
/// `block()`, `is defined`, `parent()`, `_self` macros, an included chain and loop variables
/// inside blocks, and name the right template in errors.
#[test]
fn borrowed_chains_render_like_the_first_render() {
    let lib = [
        (
            "base",
            "<{% block head %}H{% block title %}T{% endblock %}{% endblock %}|{% block body %}{% endblock %}|{{ block('title') }}{{ block('nope') is defined ? 'y' : 'n' }}>",
        ),
        (
            "mid",
            "{% extends 'base' %}{% block title %}m{{ parent() }}{% endblock %}",
        ),
        ("trait", "{% block body %}U{% endblock %}"),
        (
            "child",
            "{% extends 'mid' %}{% use 'trait' %}{% macro hi(n) %}hi{{ n }}{% endmacro %}{% block body %}{% for i in [1, 2] %}{{ loop.index }}{{ _self.hi(i) }}{% endfor %}{{ parent() }}[{% include 'other' %}]{{ i ?? '-' }}{% endblock %}",
        ),
        ("other", "{% extends 'mid' %}{% block head %}o{{ parent() }}{% endblock %}"),
        (
            "broken",
            "{% extends 'mid' %}\n{% block body %}\n{{ 1 // (d ?? 1) }}{% endblock %}",
        ),
    ];
    let engine = library(lib);
    let t = engine.get_template("child").expect("child");
    let want = "<HmT|1hi12hi2U[<oHmT||mTn>]-|mTn>";
    for _ in 0..3 {
        assert_eq!(t.render(&json!({})).expect("renders"), want);
    }
    let b = engine.get_template("broken").expect("broken");
    for _ in 0..3 {
        assert_eq!(b.render(&json!({})).expect("renders"), "<HmT|1|mTn>");
        let e = b.render(&json!({"d": 0})).expect_err("division by zero");
        assert_eq!((e.name(), e.line()), (Some("broken"), Some(3)), "{e}");
    }
}

/// `name` of `engine` rendered three times with `ctx`: the first render resolves its chain and
/// renders block by block, the later ones may run the chain's flattened body (src/vm/flat.rs).
/// All must print the same or fail alike (message, template, line). Returns the result and
/// whether the later renders ran the flattened body.
fn renders_alike(
    engine: &Engine,
    name: &str,
    ctx: serde_json::Value,
) -> (Result<String, String>, bool) {
    let t = engine.get_template(name).expect(name);
    let show = |r: Result<String, crate::Error>| {
        r.map_err(|e| format!("{e} [{:?} {:?}]", e.name(), e.line()))
    };
    let first = show(t.render(&ctx));
    let before = super::flat::RUNS.with(|n| n.get());
    for _ in 0..2 {
        assert_eq!(show(t.render(&ctx)), first, "{name} with {ctx}");
    }
    let runs = super::flat::RUNS.with(|n| n.get()) - before;
    assert!(runs == 0 || runs == 2, "{runs}");
    (first, runs == 2)
}

/// A three-level chain like benches/inheritance.rs, with an error to raise in a block of each
/// level: a text-only `parent()`, blocks run in the enclosing frame's slots and a block with
/// a loop in its own slots.
const FLAT_LIB: [(&str, &str); 4] = [
    (
        "base",
        "<t>{% block title %}Site{% endblock %}</t>\n{% block body %}{% endblock %}\n<f>{% block footer %}(c) {{ 1 // (f ?? 1) }}{% endblock %}</f>",
    ),
    (
        "section",
        "{% extends 'base' %}{% block body %}<nav>{% block nav %}home{% endblock %}</nav>\n<main>{% block main %}{% endblock %}</main>{% endblock %}",
    ),
    (
        "page",
        "{% extends 'section' %}{% block title %}{{ year }} · {{ parent() }}{% endblock %}\n{% block nav %}{{ parent() }} / {{ 1 // (n ?? 1) }}{% endblock %}",
    ),
    (
        "child",
        "{% extends 'page' %}\n{% block main %}<ul>{% for t in teams %}<li class=\"{% if loop.first %}a{% endif %}\">{{ t.name }}: {{ 1 // (t.d ?? 1) }}</li>{% endfor %}</ul>{% endblock %}",
    ),
];

#[test]
fn flattened_chains_render_like_block_by_block() {
    let teams = json!([{"name": "x"}, {"name": "y"}]);
    let (out, flat) = renders_alike(
        &library(FLAT_LIB),
        "child",
        json!({"year": 2015, "teams": teams}),
    );
    assert!(flat, "the chain runs flattened");
    assert_eq!(
        out.as_deref(),
        Ok("<t>2015 · Site</t>\n<nav>home / 1</nav>\n<main><ul><li class=\"a\">x: 1</li><li class=\"\">y: 1</li></ul></main><f>(c) 1</f>")
    );
    // an error in a block of each level names that level and line
    for (ctx, name, line) in [
        (json!({"f": 0}), "base", 3),
        (json!({"n": 0}), "page", 2),
        (json!({"teams": [{"name": "x", "d": 0}]}), "child", 2),
    ] {
        let (r, flat) = renders_alike(&library(FLAT_LIB), "child", ctx.clone());
        assert!(flat, "{ctx}");
        let e = r.expect_err("division by zero");
        assert!(
            e.contains(&format!("[Some({name:?}) Some({line})]")),
            "{ctx}: {e}"
        );
    }
    // the output and fuel limits stop a flattened body where they stop block by block (merged
    // text and `parent()` prints replayed piece by piece)
    let ctx = json!({"year": 2015, "teams": teams});
    let full = out.as_deref().map_or(0, str::len);
    let mut limited = 0;
    for max_output in 0..=full {
        let mut engine = library(FLAT_LIB);
        engine.set_limits(Limits {
            max_output,
            ..Limits::default()
        });
        let (r, flat) = renders_alike(&engine, "child", ctx.clone());
        assert!(flat);
        if max_output < full {
            let e = r.expect_err("too long");
            assert!(e.contains("size limit"), "{e}");
            limited += 1;
        }
    }
    assert_eq!(limited, full);
    for fuel in 0..40 {
        let mut engine = library(FLAT_LIB);
        engine.set_limits(Limits {
            fuel,
            ..Limits::default()
        });
        let (r, flat) = renders_alike(&engine, "child", ctx.clone());
        assert!(flat);
        if let Err(e) = r {
            assert!(e.contains("fuel"), "{e}");
        }
    }
}

#[test]
fn flattened_chains_keep_variables_and_fall_back_where_they_must() {
    // A variable set before a block: the block gets a frame of its own that sees it (Twig
    // prints `[V]|V`); a variable set by the child's body reaches the base's blocks.
    let lib = [
        (
            "base",
            "{% set v = 'V' %}{% block a %}{% endblock %}|{% block b %}{{ v }}{% endblock %}{% if true %}{% block c %}{% endblock %}{% endif %}",
        ),
        ("mid", "{% extends 'base' %}"),
        (
            "child",
            "{% extends 'mid' %}{% block a %}[{{ v }}]{% endblock %}{% block c %}({{ w ?? '-' }}){% endblock %}",
        ),
        (
            "setter",
            "{% extends 'mid' %}{% set w = 'W' %}{% block c %}({{ w }}){% endblock %}",
        ),
    ];
    let (out, flat) = renders_alike(&library(lib), "child", json!({}));
    assert_eq!((out.as_deref(), flat), (Ok("[V]|V(-)"), true));
    let (out, flat) = renders_alike(&library(lib), "setter", json!({}));
    assert_eq!((out.as_deref(), flat), (Ok("|V(W)"), true));
    // Blocks nested deeper than the depth limit allows after the chain's levels: the render
    // goes block by block, and the block beyond the limit reports it, naming its template.
    let lib = [
        (
            "base",
            "<{% block a %}{% block b %}{% block c %}{% endblock %}{% endblock %}{% endblock %}>",
        ),
        ("mid", "{% extends 'base' %}"),
        (
            "child",
            "{% extends 'mid' %}\n{% block c %}\n{{ 1 // (z ?? 1) }}{% endblock %}",
        ),
    ];
    for depth in [4, 5] {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            max_depth: depth,
            ..Limits::default()
        });
        let (r, flat) = renders_alike(&engine, "child", json!({}));
        if depth == 4 {
            assert!(!flat, "falls back");
            let e = r.expect_err("too deep");
            assert!(e.contains("block `c`"), "{e}");
        } else {
            assert!(flat);
            assert_eq!(r.as_deref(), Ok("<1>"));
            let (r, flat) = renders_alike(&engine, "child", json!({"z": 0}));
            assert!(flat);
            let e = r.expect_err("division by zero");
            assert!(e.contains("[Some(\"child\") Some(3)]"), "{e}");
        }
    }
}

/// How many flattened bodies `render` ran at once from its fresh VM, and how many merged texts
/// flattened bodies wrote, while `f` ran (src/vm/flat.rs).
fn counting<T>(f: impl FnOnce() -> T) -> (T, usize, usize) {
    let top = super::flat::AT_TOP.with(|n| n.get());
    let texts = super::flat::TEXTS.with(|n| n.get());
    let r = f();
    (
        r,
        super::flat::AT_TOP.with(|n| n.get()) - top,
        super::flat::TEXTS.with(|n| n.get()) - texts,
    )
}

#[test]
fn flattened_chains_run_at_the_top_of_a_render_only_where_they_would_run_shared() {
    // The bench's shape: the child only extends, so `render` runs the flattened body at once.
    let ctx = json!({"year": 2015, "teams": [{"name": "x"}]});
    let ((r, flat), top, _) = counting(|| renders_alike(&library(FLAT_LIB), "child", ctx.clone()));
    assert!(r.is_ok() && flat, "{r:?}");
    assert_eq!(top, 2, "the two later renders run it at the top");
    // Included, the chain is not the render's first frame; with a variable set by the child,
    // the base does not run in the child's slots: both run the flattened body the long way.
    let mut lib = FLAT_LIB.to_vec();
    lib.push(("outer", "[{% include 'child' %}]"));
    lib.push(("setter", "{% extends 'page' %}{% set year = 1 %}"));
    let ((r, _), top, _) = counting(|| renders_alike(&library(lib.clone()), "outer", ctx.clone()));
    assert!(
        r.as_deref()
            .is_ok_and(|s| s.starts_with("[<t>2015 · Site</t>")),
        "{r:?}"
    );
    assert_eq!(top, 0);
    let ((r, flat), top, _) =
        counting(|| renders_alike(&library(lib.clone()), "setter", ctx.clone()));
    assert!(
        r.as_deref().is_ok_and(|s| s.starts_with("<t>1 · Site</t>")),
        "{r:?}"
    );
    assert_eq!((flat, top), (true, 0));
    // The depth limit: the chain's levels and its deepest block just fit, so it runs at the
    // top; an include in that block passes the limit and names the whole chain, as block by
    // block. One level less: the render goes block by block.
    let lib = [
        ("base", "<{% block a %}{% include 'leaf' %}{% endblock %}>"),
        ("mid", "{% extends 'base' %}"),
        ("child", "{% extends 'mid' %}"),
        ("leaf", "L"),
    ];
    for (max_depth, expect_top) in [(2, 0), (3, 2), (4, 2)] {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            max_depth,
            ..Limits::default()
        });
        let ((r, _), top, _) = counting(|| renders_alike(&engine, "child", json!({})));
        assert_eq!(top, expect_top, "max_depth {max_depth}");
        match max_depth {
            4 => assert_eq!(r.as_deref(), Ok("<L>")),
            3 => {
                let e = r.expect_err("too deep");
                assert!(e.contains("child → mid → base → leaf"), "{e}");
            }
            _ => assert!(r.is_err_and(|e| e.contains("nesting depth")), "{max_depth}"),
        }
    }
}

#[test]
fn flattened_frames_write_their_first_and_last_text_outside() {
    // Block `a` gets a frame of its own (a variable was set before it) and block `b` too
    // (it has a loop variable): the text at their start and end (`x`, the text-only
    // `parent()`, `y`, `<b>`, `</b>`) is merged with the text around the frames.
    let lib = [
        (
            "base",
            "{% set v = 'V' %}<a>{% block a %}A{% endblock %}</a>\n{% block b %}{% endblock %}",
        ),
        ("mid", "{% extends 'base' %}"),
        (
            "child",
            "{% extends 'mid' %}{% block a %}x{{ parent() }}{{ v }}{{ 1 // (z ?? 1) }}y{% endblock %}\n{% block b %}<b>{% for i in [1, 2] %}{{ i }}{% endfor %}</b>{% endblock %}",
        ),
    ];
    let ((out, flat), _, texts) = counting(|| renders_alike(&library(lib), "child", json!({})));
    assert_eq!(
        (out.as_deref(), flat),
        (Ok("<a>xAV1y</a>\n<b>12</b>"), true)
    );
    // `<a>xA`, `y</a>\n<b>`, `</b>` in each of the two flattened renders
    assert_eq!(texts, 6);
    // an error between the moved texts names the child and its line
    let (r, flat) = renders_alike(&library(lib), "child", json!({"z": 0}));
    assert!(flat);
    let e = r.expect_err("division by zero");
    assert!(e.contains("[Some(\"child\") Some(1)]"), "{e}");
    // every output and fuel limit stops the moved text where it stops block by block
    let full = out.as_deref().map_or(0, str::len);
    for max_output in 0..=full {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            max_output,
            ..Limits::default()
        });
        let (r, flat) = renders_alike(&engine, "child", json!({}));
        assert!(flat);
        assert_eq!(r.is_ok(), max_output == full, "{max_output}: {r:?}");
    }
    let mut failed = 0;
    for fuel in 0..40 {
        let mut engine = library(lib);
        engine.set_limits(Limits {
            fuel,
            ..Limits::default()
        });
        let (r, flat) = renders_alike(&engine, "child", json!({}));
        assert!(flat);
        if let Err(e) = r {
            assert!(e.contains("fuel"), "{e}");
            failed += 1;
        }
    }
    assert!((1..40).contains(&failed), "{failed}");
}

#[test]
fn constant_subscripts_read_as_evaluated_ones() {
    // `b[LITERAL]` is read by reference (src/vm/eval.rs, `lookup`); `b[k]` with the same key
    // in a variable is evaluated. Both must print, fail and name the key alike.
    let ctx = json!({
        "m": {"a": 1, "0": "zero", "1": {"x": "deep"}},
        "l": [10, {"x": "in list"}, 30],
        "s": "hey",
        "n": 5,
        "z": null,
    });
    let bases = ["m", "l", "s", "n", "z", "u", "m['1']", "l[1]"];
    let keys = [
        "'a'", "'zz'", "'0'", "'1'", "0", "1", "5", "-1", "1.0", "true", "false",
    ];
    let mut strict_engine = Engine::new();
    strict_engine.set_strict(true);
    let lenient_engine = Engine::new();
    for base in bases {
        for key in keys {
            for (src_lit, src_var) in [
                (
                    format!("{{{{ {base}[{key}] }}}}"),
                    format!("{{% set k = {key} %}}{{{{ {base}[k] }}}}"),
                ),
                (
                    format!("{{{{ {base}[{key}]|json_encode }}}}"),
                    format!("{{% set k = {key} %}}{{{{ {base}[k]|json_encode }}}}"),
                ),
                (
                    format!("{{{{ {base}[{key}].x ?? 'none' }}}}"),
                    format!("{{% set k = {key} %}}{{{{ {base}[k].x ?? 'none' }}}}"),
                ),
            ] {
                for engine in [&lenient_engine, &strict_engine] {
                    let run = |src: &str| {
                        engine
                            .compile("t", src)
                            .expect(src)
                            .render(&ctx)
                            .map_err(|e| e.message().to_string())
                    };
                    // an error quotes the expression as written: `b[0]` against `b[k]`
                    let var = run(&src_var).map_err(|m| m.replace("[k]", &format!("[{key}]")));
                    assert_eq!(run(&src_lit), var, "{src_lit}");
                }
            }
        }
    }
}
