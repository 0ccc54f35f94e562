//! The one place the engine and the listener read the time and draw randomness for values a
//! template or a run can see (`date("now")`, `now()`, `random()`, `uuid()`, run ids, JWT
//! `exp`/`nbf` checks, `greater_than_now`, `delay_ms` due times).
//!
//! Normally this is the system clock and the thread-local CSPRNG. `flexscript test`
//! (docs/testing.md) runs each case on its own thread and installs a [`Frozen`] clock there:
//! a fixed start instant plus whatever the installer's elapsed function reports (the test
//! runner uses tokio's paused time, so a skipped `delay_ms` moves it), and a seeded generator.
//! The override is per thread, so cases running side by side do not see each other's clock.

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A frozen clock and (optionally) a seeded random generator for the current thread.
pub struct Frozen {
    /// The instant `now` reads before any time has passed.
    pub start: DateTime<Utc>,
    /// Time elapsed since `start` (for example a paused tokio clock).
    pub elapsed: Box<dyn Fn() -> Duration>,
    /// The seeded generator; `None` keeps real randomness.
    pub rng: Option<StdRng>,
    /// The last value [`unique_micros`] handed out under this clock (0: none yet).
    last_unique: u64,
}

thread_local! {
    static FROZEN: RefCell<Option<Frozen>> = const { RefCell::new(None) };
}

/// The last value [`unique_micros`] handed out in this process (no frozen clock).
static LAST_UNIQUE: AtomicU64 = AtomicU64::new(0);

/// Removes the thread's frozen clock when dropped.
pub struct FrozenGuard(());

impl Drop for FrozenGuard {
    fn drop(&mut self) {
        FROZEN.with(|f| f.borrow_mut().take());
    }
}

/// Installs a frozen clock for the current thread until the guard is dropped.
pub fn freeze(
    start: DateTime<Utc>,
    elapsed: Box<dyn Fn() -> Duration>,
    seed: Option<u64>,
) -> FrozenGuard {
    FROZEN.with(|f| {
        *f.borrow_mut() = Some(Frozen {
            start,
            elapsed,
            rng: seed.map(StdRng::seed_from_u64),
            last_unique: 0,
        })
    });
    FrozenGuard(())
}

/// Now: the frozen clock of this thread, else the system clock.
pub fn now() -> DateTime<Utc> {
    FROZEN
        .with(|f| {
            f.borrow().as_ref().map(|fr| {
                let d = chrono::Duration::from_std((fr.elapsed)()).unwrap_or_default();
                fr.start + d
            })
        })
        .unwrap_or_else(Utc::now)
}

/// [`now`] in milliseconds since the Unix epoch (floored, as `timestamp_millis`), without the
/// calendar conversion of a `DateTime` when no clock is frozen: run ids, journal times and JWT
/// checks read it several times per request.
pub fn now_millis() -> i64 {
    let frozen = FROZEN.with(|f| f.borrow().is_some());
    if !frozen {
        if let Ok(d) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            return i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        }
    }
    now().timestamp_millis()
}

/// A strictly increasing microsecond value for `uniqueId`: [`now`] in microseconds, or one more
/// than the last value handed out. The last value is kept per frozen clock (so under
/// `flexscript test --jobs N` a case's ids depend only on the case, not on the cases run beside
/// it), else once for the process (ids unique within the process).
pub fn unique_micros() -> u64 {
    let now = now().timestamp_micros().max(0) as u64;
    let frozen = FROZEN.with(|f| {
        f.borrow_mut().as_mut().map(|fr| {
            fr.last_unique = now.max(fr.last_unique.saturating_add(1));
            fr.last_unique
        })
    });
    if let Some(next) = frozen {
        return next;
    }
    let mut last = LAST_UNIQUE.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST_UNIQUE.compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// Runs `f` with the seeded generator of this thread, else the thread-local CSPRNG.
pub fn with_rng<T>(f: impl FnOnce(&mut dyn RngCore) -> T) -> T {
    let mut f = Some(f);
    let seeded = FROZEN.with(|fr| {
        let mut fr = fr.borrow_mut();
        match fr.as_mut().and_then(|fr| fr.rng.as_mut()) {
            Some(rng) => f.take().map(|f| f(rng)),
            None => None,
        }
    });
    match (seeded, f) {
        (Some(v), _) => v,
        (None, Some(f)) => f(&mut rand::thread_rng()),
        // `f` was taken only when the seeded branch produced a value.
        (None, None) => unreachable!("with_rng: closure consumed without a value"),
    }
}

/// 16 random bytes (from [`with_rng`]).
pub fn random_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    with_rng(|r| r.fill_bytes(&mut b));
    b
}

/// A random version 4 UUID (from [`with_rng`]).
pub fn uuid_v4() -> uuid::Uuid {
    uuid::Builder::from_random_bytes(random_bytes()).into_uuid()
}

/// A time-ordered (version 7) UUID: [`now`] in milliseconds, then 74 random bits (from
/// [`with_rng`]). Ids made later sort after earlier ones (within a millisecond, in any order),
/// so the journal's indexes on run ids grow at their end (docs/state.md, "Performance").
pub fn uuid_v7() -> uuid::Uuid {
    let bytes = random_bytes();
    let mut rand = [0u8; 10];
    rand.copy_from_slice(&bytes[..10]);
    let ms = u64::try_from(now_millis()).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(ms, &rand).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn milliseconds_read_the_same_clock_as_now() {
        let before = Utc::now().timestamp_millis();
        let ms = now_millis();
        let after = Utc::now().timestamp_millis();
        assert!(before <= ms && ms <= after, "{before} {ms} {after}");
        let start: DateTime<Utc> = "2026-03-01T09:00:00.123456Z".parse().unwrap();
        let step = Rc::new(Cell::new(Duration::from_micros(1_500)));
        let seen = step.clone();
        let _g = freeze(start, Box::new(move || seen.get()), None);
        assert_eq!(now_millis(), start.timestamp_millis() + 1);
        step.set(Duration::from_secs(2));
        assert_eq!(now_millis(), now().timestamp_millis());
        assert_eq!(now_millis(), start.timestamp_millis() + 2_000);
        let before_epoch: DateTime<Utc> = "1969-12-31T23:59:59.9995Z".parse().unwrap();
        let _g2 = freeze(before_epoch, Box::new(|| Duration::ZERO), None);
        assert_eq!(now_millis(), -1, "floored, as timestamp_millis");
    }

    #[test]
    fn unique_values_count_per_frozen_clock_and_per_process_otherwise() {
        let start: DateTime<Utc> = "2026-03-01T09:00:00Z".parse().unwrap();
        let micros = start.timestamp_micros() as u64;
        let case = || {
            let _g = freeze(start, Box::new(|| Duration::ZERO), Some(1));
            [unique_micros(), unique_micros(), unique_micros()]
        };
        let expected = [micros, micros + 1, micros + 2];
        // The same case gives the same values, whatever ran before it on any thread.
        assert_eq!(case(), expected);
        let other = std::thread::spawn(move || {
            let _g = freeze(start, Box::new(|| Duration::ZERO), None);
            let mut last = 0;
            for _ in 0..100 {
                last = unique_micros();
            }
            last
        });
        assert_eq!(other.join().unwrap(), micros + 99);
        assert_eq!(case(), expected);
        // Unfrozen: the process counter, strictly increasing and from the real clock.
        let (a, b) = (unique_micros(), unique_micros());
        assert!(b > a && a > micros);
    }

    #[test]
    fn frozen_clock_and_seed_are_per_thread_and_deterministic() {
        let start: DateTime<Utc> = "2026-03-01T09:00:00Z".parse().unwrap();
        let step = Rc::new(Cell::new(0u64));
        let s2 = step.clone();
        let draw = || (now(), uuid_v4(), with_rng(|r| r.next_u32()));
        let a = {
            let _g = freeze(
                start,
                Box::new(move || Duration::from_secs(s2.get())),
                Some(7),
            );
            assert_eq!(now(), start);
            step.set(5);
            assert_eq!(now(), start + chrono::Duration::seconds(5));
            draw()
        };
        let b = {
            let _g = freeze(start, Box::new(|| Duration::from_secs(5)), Some(7));
            draw()
        };
        assert_eq!(a, b);
        assert_eq!(a.1.get_version_num(), 4);
        // Unfrozen again: the real clock and real randomness.
        assert!(now() > start + chrono::Duration::days(30));
        assert_ne!(uuid_v4(), uuid_v4());
    }

    #[test]
    fn v7_uuids_follow_the_clock_and_the_seed() {
        let start: DateTime<Utc> = "2026-03-01T09:00:00Z".parse().unwrap();
        let step = Rc::new(Cell::new(0u64));
        let s2 = step.clone();
        let _g = freeze(
            start,
            Box::new(move || Duration::from_millis(s2.get())),
            Some(7),
        );
        let a = uuid_v7();
        step.set(1);
        let b = uuid_v7();
        assert_eq!(a.get_version_num(), 7);
        assert!(a < b, "{a} {b}");
        assert!(a.simple().to_string() < b.simple().to_string());
        let (secs, _) = a.get_timestamp().unwrap().to_unix();
        assert_eq!(secs as i64, start.timestamp());
        assert_ne!(uuid_v7(), b, "random within a millisecond");
    }
}
