//! Server-Sent Events for `sse` endpoints (docs/listener.md "Responses").
//!
//! The stream starts with the run's first message: a failure before any frame is a 500 JSON
//! error (the handler's job); otherwise a 200 `text/event-stream` whose body is fed by a pump
//! task. Each emit is `id: n` (from 1), an optional `event:`, one `data:` line per line of the
//! text, and a blank line; a `: keep-alive` comment goes out every [`KEEP_ALIVE`]. After a
//! `final` emit, the end of the run, or server shutdown, the stream sends `event: end` and
//! closes. When the client goes away the body is dropped and the pump aborts the run.

use super::respond::Body;
use super::workflow::SseMsg;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Frame;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// Interval of `: keep-alive` comments.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The final frame of every stream.
pub const END_FRAME: &str = "event: end\ndata:\n\n";

/// Formats one event frame.
pub fn frame(id: u64, event: Option<&str>, data: &str) -> String {
    let mut out = format!("id: {id}\n");
    if let Some(e) = event {
        out.push_str("event: ");
        out.push_str(e);
        out.push('\n');
    }
    let text = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in text.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A response body fed by a channel.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Starts the stream: `first` is the run's first frame (or `None` when the run ended without
/// emitting), `rx` the rest, `run` the run's task (aborted when the client leaves).
pub fn stream(
    first: Option<SseMsg>,
    mut rx: mpsc::Receiver<SseMsg>,
    run: JoinHandle<()>,
    mut shutdown: watch::Receiver<bool>,
) -> Response<Body> {
    let (tx, body_rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut id = 0u64;
        let mut pending = first;
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        let mut run = Some(run);
        loop {
            let msg = match pending.take() {
                Some(m) => Some(m),
                None => tokio::select! {
                    m = rx.recv() => m,
                    _ = ticker.tick() => {
                        if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() { break; }
                        continue;
                    }
                    _ = tx.closed() => break,
                    _ = shutdown.changed() => None,
                },
            };
            match msg {
                Some(SseMsg::Frame {
                    event,
                    data,
                    is_final,
                }) => {
                    id += 1;
                    if tx
                        .send(Bytes::from(frame(id, event.as_deref(), &data)))
                        .await
                        .is_err()
                    {
                        break;
                    }
                    if is_final {
                        let _ = tx.send(Bytes::from_static(END_FRAME.as_bytes())).await;
                        // The run may go on (its later emits are ignored) but the stream is done.
                        return;
                    }
                }
                Some(SseMsg::Failed(_) | SseMsg::Unavailable(_)) => {}
                None => {
                    let _ = tx.send(Bytes::from_static(END_FRAME.as_bytes())).await;
                    if let Some(r) = run.take() {
                        if *shutdown.borrow() {
                            r.abort();
                        }
                    }
                    return;
                }
            }
        }
        // Client gone: cancel the rest of the run.
        if let Some(r) = run.take() {
            r.abort();
        }
    });
    let mut r = Response::new(ChannelBody(body_rx).boxed());
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn next_text(body: &mut Body) -> Option<String> {
        let f = body.frame().await?.ok()?;
        f.into_data()
            .ok()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alive_every_15_s_then_end_when_the_run_ends() {
        let (tx, rx) = mpsc::channel(4);
        let (_stop, shutdown) = watch::channel(false);
        let run = tokio::spawn(async {});
        let first = SseMsg::Frame {
            event: None,
            data: "hi".into(),
            is_final: false,
        };
        let mut body = stream(Some(first), rx, run, shutdown).into_body();
        assert_eq!(
            next_text(&mut body).await.as_deref(),
            Some("id: 1\ndata: hi\n\n")
        );
        let t = tokio::time::Instant::now();
        assert_eq!(
            next_text(&mut body).await.as_deref(),
            Some(": keep-alive\n\n")
        );
        assert_eq!(t.elapsed(), KEEP_ALIVE);
        assert_eq!(
            next_text(&mut body).await.as_deref(),
            Some(": keep-alive\n\n")
        );
        drop(tx);
        assert_eq!(next_text(&mut body).await.as_deref(), Some(END_FRAME));
        assert!(next_text(&mut body).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_stream_and_cancels_the_run() {
        let (_tx, rx) = mpsc::channel(4);
        let (stop, shutdown) = watch::channel(false);
        let run = tokio::spawn(tokio::time::sleep(Duration::from_secs(3600)));
        let abort = run.abort_handle();
        let mut body = stream(None, rx, run, shutdown).into_body();
        stop.send(true).ok();
        assert_eq!(next_text(&mut body).await.as_deref(), Some(END_FRAME));
        assert!(next_text(&mut body).await.is_none());
        tokio::task::yield_now().await;
        assert!(abort.is_finished());
    }

    #[test]
    fn frames() {
        assert_eq!(
            super::frame(3, Some("tick"), "a\nb"),
            "id: 3\nevent: tick\ndata: a\ndata: b\n\n"
        );
        assert_eq!(super::frame(1, None, ""), "id: 1\ndata: \n\n");
    }
}
