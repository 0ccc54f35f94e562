//! The header-read timer of one connection (docs/listener.md "Performance", "Header-read
//! timer"): hyper asks its timer for a new sleep each time it starts reading a request's
//! headers and drops it once they are in, so with hyper-util's `TokioTimer` every request
//! allocated a tokio sleep, inserted it in the runtime's timer wheel and took it out again
//! (two trips through the timer driver's lock).
//!
//! [`ConnTimer`] keeps one tokio sleep per connection instead. The sleeps it hands to hyper are
//! deadlines that share it: a deadline is over only when the clock has reached it, and the
//! shared sleep is moved only when it goes off before the deadline being waited for (it was
//! armed for an earlier request), about once per [`HEADER_READ_TIMEOUT`] per connection.
//! The protection is unchanged: headers not received within the timeout end the connection,
//! at the same time as before. Between two requests the shared sleep may go off once with
//! nobody waiting for it, which wakes the connection's task once for nothing.
//!
//! [`HEADER_READ_TIMEOUT`]: super::server::HEADER_READ_TIMEOUT

use hyper::rt::{Sleep, Timer};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The timer of one connection (give each connection its own: the sleep is shared).
#[derive(Clone, Default)]
pub(crate) struct ConnTimer {
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl ConnTimer {
    /// A timer with no sleep armed yet.
    pub(crate) fn new() -> ConnTimer {
        ConnTimer::default()
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        Box::pin(Deadline {
            at: tokio::time::Instant::from_std(deadline),
            shared: self.shared.clone(),
        })
    }

    /// tokio's clock, as `TokioTimer` (so a paused test clock applies).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// One sleep handed to hyper: over when the clock reaches `at`.
struct Deadline {
    at: tokio::time::Instant,
    shared: Arc<Mutex<Option<Pin<Box<tokio::time::Sleep>>>>>,
}

impl Sleep for Deadline {}

impl Future for Deadline {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let at = self.at;
        let mut slot = self.shared.lock().unwrap_or_else(|p| p.into_inner());
        let sleep = slot.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        // Armed for later than this deadline (not the case for hyper's header timer, whose
        // deadlines only grow): bring it forward.
        if sleep.deadline() > at {
            sleep.as_mut().reset(at);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            // The shared sleep's deadline is not reached, and it is not after ours.
            return Poll::Pending;
        }
        if tokio::time::Instant::now() >= at {
            return Poll::Ready(());
        }
        // It went off for an earlier deadline: wait for this one (the poll registers the
        // waker; it is ready at once only if the clock passed `at` in between).
        sleep.as_mut().reset(at);
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::ConnTimer;
    use hyper::rt::Timer;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    fn poll(s: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> Poll<()> {
        s.as_mut()
            .poll(&mut Context::from_waker(std::task::Waker::noop()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_is_over_when_the_clock_reaches_it_not_before() {
        let timer = ConnTimer::new();
        let mut s = timer.sleep(Duration::from_secs(30));
        assert!(poll(&mut s).is_pending());
        tokio::time::advance(Duration::from_millis(29_999)).await;
        assert!(poll(&mut s).is_pending());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(poll(&mut s).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn a_later_request_is_not_cut_off_at_an_earlier_requests_deadline() {
        let timer = ConnTimer::new();
        // The first request's headers arrive after 1 s: its sleep is dropped, the shared one
        // stays armed for t = 30 s.
        let mut first = timer.sleep(Duration::from_secs(30));
        assert!(poll(&mut first).is_pending());
        tokio::time::advance(Duration::from_secs(10)).await;
        drop(first);
        // The next request starts reading at t = 10 s: its deadline is t = 40 s.
        let mut second = timer.sleep(Duration::from_secs(30));
        assert!(poll(&mut second).is_pending());
        tokio::time::advance(Duration::from_secs(25)).await; // t = 35 s: past the old deadline
        assert!(poll(&mut second).is_pending());
        tokio::time::advance(Duration::from_secs(4)).await; // t = 39 s
        assert!(poll(&mut second).is_pending());
        tokio::time::advance(Duration::from_secs(1)).await; // t = 40 s
        assert!(poll(&mut second).is_ready());
    }

    #[tokio::test(start_paused = true)]
    async fn the_connection_is_woken_at_the_deadline() {
        // Awaited (not polled by hand): the task must be woken when the time comes, also after
        // the shared sleep went off for an earlier deadline.
        let timer = ConnTimer::new();
        let mut first = timer.sleep(Duration::from_secs(30));
        assert!(poll(&mut first).is_pending());
        drop(first);
        tokio::time::advance(Duration::from_secs(20)).await;
        let second = timer.sleep(Duration::from_secs(30)); // deadline t = 50 s
        let start = tokio::time::Instant::now();
        second.await;
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_deadline_brings_the_shared_sleep_forward() {
        let timer = ConnTimer::new();
        let mut long = timer.sleep(Duration::from_secs(60));
        assert!(poll(&mut long).is_pending());
        drop(long);
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
