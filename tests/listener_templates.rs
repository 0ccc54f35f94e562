//! The template library in the listener and the CLI (docs/templates.md): `[server]
//! templates = "DIR"`, endpoint fields extending and including its files, configuration
//! errors, `flexscript render --templates` and `flexscript check --templates`.
mod listener_support;
use flexscript::listener::check_config;
use listener_support::*;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_flexscript");

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run flexscript");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn endpoint(body: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"a\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\nreturn_type = \"data\"\nreturn_data = '''{body}'''\n",
        hash('a'),
        hash('b')
    )
}

#[tokio::test]
async fn endpoint_fields_extend_and_include_the_folder() {
    let dir = temp_dir();
    write(
        dir.path(),
        "tpl/layouts/json.twig",
        "{\"ok\": true, \"data\": {% block data %}null{% endblock %}}",
    );
    write(
        dir.path(),
        "tpl/parts/name.twig",
        "\"{{ __data.name|default('anon') }}\"",
    );
    let toml = format!(
        "[server]\ntemplates = \"tpl\"\n\n{}",
        endpoint("{% extends 'layouts/json.twig' %}{% block data %}{% include 'parts/name.twig' %}{% endblock %}")
    );
    write(dir.path(), "endpoints.toml", &toml);
    let path = dir.path().join("endpoints.toml");
    let (errors, _) = check_config(&path);
    assert!(errors.is_empty(), "{errors:?}");
    let s = serve_file(&path).await;
    let r = s.get(&format!("{}?name=Ann", ep_path('a', 'b'))).await;
    assert_eq!(r.json(), serde_json::json!({"ok": true, "data": "Ann"}));
    s.running.shutdown().await;
}

#[test]
fn folder_errors_are_configuration_errors() {
    let dir = temp_dir();
    write(dir.path(), "tpl/bad.twig", "{% if x %}");
    write(dir.path(), "tpl/both.twig", "x");
    let toml = format!(
        "[server]\ntemplates = \"tpl\"\n\n[snippets]\n\"both.twig\" = \"y\"\n\n{}",
        endpoint("{% include 'missing.twig' %}")
    );
    write(dir.path(), "endpoints.toml", &toml);
    let (errors, _) = check_config(&dir.path().join("endpoints.toml"));
    let all = errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        all.contains("`both.twig` is both a snippet and a file of the templates folder"),
        "{all}"
    );
    assert!(all.contains("bad.twig") && all.contains("endif"), "{all}");
    // a missing folder is an error too
    write(dir.path(), "other.toml", "[server]\ntemplates = \"nope\"\n");
    let (errors, _) = check_config(&dir.path().join("other.toml"));
    assert!(
        errors
            .iter()
            .any(|e| e.to_string().contains("server.templates")),
        "{errors:?}"
    );
}

#[test]
fn cli_render_and_check_with_a_templates_folder() {
    let dir = temp_dir();
    write(
        dir.path(),
        "t/base.html",
        "<title>{% block t %}{% endblock %}</title>",
    );
    write(
        dir.path(),
        "t/page.html",
        "{% extends 'base.html' %}{% block t %}{{ _self }}{% endblock %}",
    );
    write(dir.path(), "t/secret.toml", "api_key = 1");
    write(
        dir.path(),
        "main.twig",
        "{% include 'page.html' %}|{{ source('../secret.toml', ignore_missing: true) }}",
    );
    let t = dir.path().join("t");
    let t = t.to_str().expect("utf-8");
    let main = dir.path().join("main.twig");
    let (code, out, err) = cli(&["render", main.to_str().expect("utf-8"), "--templates", t]);
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("`..` leaves the template folder"), "{err}");
    write(
        dir.path(),
        "main.twig",
        "{% include 'page.html' %}|{{ source('secret.toml', ignore_missing: true) }}|",
    );
    let (code, out, err) = cli(&["render", main.to_str().expect("utf-8"), "--templates", t]);
    assert_eq!(
        (code, out.as_str()),
        (0, "<title>page.html</title>||"),
        "{err}"
    );
    // a file inside the folder is rendered under its library name
    let page = dir.path().join("t/page.html");
    let (code, out, _) = cli(&["render", page.to_str().expect("utf-8"), "--templates", t]);
    assert_eq!((code, out.as_str()), (0, "<title>page.html</title>"));
    let (code, _, err) = cli(&["check", "--templates", t]);
    assert_eq!(code, 0, "{err}");
    write(dir.path(), "t/broken.html", "{{ x | nope }}");
    let (code, _, err) = cli(&["check", "--templates", t]);
    assert_eq!(code, 1);
    assert!(
        err.contains("broken.html") && err.contains("unknown filter `nope`"),
        "{err}"
    );
}

/// Polls `GET` on the endpoint until its body is `want` (generous: the machine may be loaded).
async fn poll_body(addr: std::net::SocketAddr, want: &str) -> String {
    let t = std::time::Instant::now();
    let mut seen = String::new();
    while t.elapsed() < std::time::Duration::from_secs(30) {
        seen = request(addr, "GET", &ep_path('a', 'b'), &[], b"")
            .await
            .body;
        if seen == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_watch_reloads_when_a_template_file_changes() {
    let dir = temp_dir();
    write(dir.path(), "tpl/parts/v.twig", "\"one\"");
    let toml = format!(
        "[server]\ntemplates = \"tpl\"\n\n{}",
        endpoint("{\"v\": {% include 'parts/v.twig' %}}")
    );
    write(dir.path(), "endpoints.toml", &toml);
    let path = dir.path().join("endpoints.toml");
    let mut child = Command::new(BIN)
        .args(["serve", path.to_str().expect("utf-8")])
        .args(["--addr", "127.0.0.1:0", "--state", "memory", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn serve");
    let addr = ready_addr(&mut child).await;
    assert_eq!(poll_body(addr, r#"{"v": "one"}"#).await, r#"{"v": "one"}"#);
    // a rewritten file (the configuration file is not touched)
    write(dir.path(), "tpl/parts/v.twig", "\"two, longer\"");
    let two = poll_body(addr, r#"{"v": "two, longer"}"#).await;
    // a broken template is refused: the previous library keeps serving
    write(dir.path(), "tpl/parts/v.twig", "{% if %}");
    write(dir.path(), "tpl/parts/w.twig", "\"new file\"");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let kept = request(addr, "GET", &ep_path('a', 'b'), &[], b"")
        .await
        .body;
    // a fix, and a file added in a new subfolder that the fix includes
    write(dir.path(), "tpl/more/x.twig", "\"added\"");
    write(
        dir.path(),
        "tpl/parts/v.twig",
        "{% include 'more/x.twig' %}",
    );
    let three = poll_body(addr, r#"{"v": "added"}"#).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(two, r#"{"v": "two, longer"}"#);
    assert_eq!(kept, r#"{"v": "two, longer"}"#);
    assert_eq!(three, r#"{"v": "added"}"#);
}
