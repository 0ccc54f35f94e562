//! End-to-end: return types, 404/405/413, listing (real server, real HTTP).
mod listener_support;
use listener_support::*;

fn endpoint(a: char, extra: &str) -> String {
    format!(
        "[[endpoint]]\nname = \"ep-{a}\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n{extra}\n",
        hash(a),
        hash('b')
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_json_is_detected_and_rendered_with_request_data() {
    let s = serve(&endpoint(
        'a',
        r#"return_type = "data"
return_data = '''{"status": "received", "ref": "{{ __data.case_ref }}"}'''"#,
    ))
    .await;
    let r = s
        .post_json(&ep_path('a', 'b'), r#"{"case_ref": "C-9"}"#)
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        r.json(),
        serde_json::json!({"status": "received", "ref": "C-9"})
    );
    s.running.shutdown().await;
}
