//! End-to-end over real sockets: the cap on simultaneously open connections (docs/listener.md "Operations",
//! memory stays bounded): at the cap a new client waits unaccepted and is served as soon as an
//! open connection closes.
#![cfg(feature = "listener")]
mod listener_support;
use flexscript::listener::Options;
use listener_support::*;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

fn one_endpoint(server_table: &str) -> String {
    format!(
        "{server_table}[[endpoint]]\nname = \"ep\"\nfirst_hash = \"{}\"\nsecond_hash = \"{}\"\n\
         return_type = \"data\"\nreturn_data = '''{{\"n\": 1}}'''\n",
        hash('a'),
        hash('b')
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let options = Options::default().with_max_connections(2);
    // The embedding program's option wins over the file.
    let s = serve_with(&one_endpoint("[server]\nmax_connections = 50\n"), options).await;
    cap_of_two_holds(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_comes_from_the_configuration_file() {
    let s = serve(&one_endpoint("[server]\nmax_connections = 2\n")).await;
    cap_of_two_holds(s).await;
}

/// Two idle connections fill a cap of two; a third client waits until one closes.
async fn cap_of_two_holds(s: Server) {
    // Two idle connections take both slots (no request sent: they sit in the header read).
    let idle1 = TcpStream::connect(s.addr).await.expect("connect 1");
    let idle2 = TcpStream::connect(s.addr).await.expect("connect 2");
    // Let the server accept them before the third arrives.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The third connects (kernel backlog) and sends a full request, but is not served.
    let mut third = TcpStream::connect(s.addr).await.expect("connect 3");
    send_head(&mut third, "GET", &ep_path('a', 'b'), &[], b"").await;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");

    // Closing one idle connection frees a slot: the waiting request is answered.
    drop(idle1);
    tokio::time::timeout(Duration::from_secs(20), third.read_to_end(&mut raw))
        .await
        .expect("served once a slot frees")
        .expect("read");
    let r = parse_response(&raw);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"n": 1}));

    // With the slot of the finished request back, a fourth client is served too (idle2 still
    // holds the other slot).
    let r = s.get(&ep_path('a', 'b')).await;
    assert_eq!(r.status, 200, "{r:?}");
    drop(idle2);
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_cap_is_4096() {
    assert_eq!(Options::default().max_connections, None);
    assert_eq!(flexscript::listener::server::MAX_CONNECTIONS, 4096);
    let config = flexscript::listener::load_config(&write_config(&one_endpoint(""))).expect("load");
    assert_eq!(config.server.max_connections, 4096);
}
