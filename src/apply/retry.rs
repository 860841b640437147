//! The retry policy, apart from resource code (kube's `error_policy`, cargo's `maybe_spurious`).
//!
//! Resource code makes a call and classifies a failure once, as an [`ErrorClass`] (the provider
//! does that where it parses the error code). [`RetryPolicy::decide`] is the one function that
//! turns (class, operation, attempt, elapsed) into what happens next:
//!
//! | class | decision |
//! | --- | --- |
//! | `Throttled { retry_after }` | retry after `max(retry_after, backoff)` |
//! | `Transient`, `Conflict` | retry after the backoff |
//! | `NoCapacity` | [`Decision::Replan`]: move to the next (type, zone); never retried in place |
//! | `NotFound` on a delete or read | [`Decision::Done`]: already gone / absent |
//! | `NotFound` on a create or update | retry within `not_found_grace` (read-after-write lag of a parent just created, aliyun-api.md §4.2), then stop |
//! | `Fatal` | stop |
//!
//! The backoff is exponential from `initial_delay` (0.5 s), doubling to `max_delay` (20 s), with
//! "equal jitter" (a delay in `[d/2, d]`), the Aliyun SDK's curve for throttling
//! (aliyun-api.md §4.4). Every call has a budget, `max_attempts` and `max_elapsed`: a retry that
//! would exceed either is a stop, so nothing loops forever (original-tool.md §5.1).
//!
//! [`retry`] runs a call under the policy, sleeping between attempts (cancellably, when given a
//! [`StepContext`]) and reporting each retry as an `ApplyEvent::Retried`. A retried mutation
//! must be the *same* request: re-send the same `ClientToken` so the cloud deduplicates it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use rand::RngExt;
use tokio::time::Instant;

use super::event::RetryNotice;
use super::executor::StepContext;
use crate::provider::ErrorClass;

/// A failure that knows its class. Provider errors implement it.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

impl Classify for ErrorClass {
    fn class(&self) -> ErrorClass {
        *self
    }
}

/// What kind of call failed; it changes what `NotFound` means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Create,
    Update,
    Delete,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Call again, the same way, after `after`.
    Retry { after: Duration },
    /// No capacity here: choose another placement (zone, type or region).
    Replan,
    /// The goal already holds: a delete of something gone, a read of something absent.
    Done,
    /// Give up: report the failure.
    Stop(StopReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The cloud said a human must act (auth, quota, bad parameter).
    Fatal,
    /// A create or update kept failing with NotFound beyond the read-after-write grace.
    NotFound,
    /// The call's attempts are used up.
    AttemptsExhausted,
    /// Waiting again would pass the call's time budget.
    TimeExhausted,
    /// The apply was cancelled while waiting to retry.
    Cancelled,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopReason::Fatal => "not retryable",
            StopReason::NotFound => "still not found",
            StopReason::AttemptsExhausted => "out of attempts",
            StopReason::TimeExhausted => "out of time",
            StopReason::Cancelled => "cancelled",
        })
    }
}

/// Backoff curve and budget for one call. `Default` is the policy for ordinary calls; raise the
/// budget with [`RetryPolicy::with_budget`] for calls known to wait on the cloud (e.g. deleting
/// a VPC while its instances are still releasing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits about this long (jittered into `[d/2, d]`).
    pub initial_delay: Duration,
    /// No single wait computed by the backoff exceeds this. A longer `retry_after` from the
    /// cloud is still honoured, within `max_elapsed`.
    pub max_delay: Duration,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// Time per call from its first attempt, waits included.
    pub max_elapsed: Duration,
    /// How long a `NotFound` on a create or update is taken for read-after-write lag.
    pub not_found_grace: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_attempts: 10,
            max_elapsed: Duration::from_secs(5 * 60),
            not_found_grace: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The same curve with another budget.
    pub fn with_budget(mut self, max_attempts: u32, max_elapsed: Duration) -> Self {
        self.max_attempts = max_attempts.max(1);
        self.max_elapsed = max_elapsed;
        self
    }

    /// Decides what follows failed attempt number `attempt` (1-based) of class `class`, made
    /// `elapsed` after the call's first attempt began.
    pub fn decide<R: rand::Rng + ?Sized>(
        &self,
        class: ErrorClass,
        op: Operation,
        attempt: u32,
        elapsed: Duration,
        rng: &mut R,
    ) -> Decision {
        let after = match class {
            ErrorClass::Fatal => return Decision::Stop(StopReason::Fatal),
            ErrorClass::NoCapacity => return Decision::Replan,
            ErrorClass::NotFound => match op {
                Operation::Delete | Operation::Read => return Decision::Done,
                Operation::Create | Operation::Update => {
                    if elapsed >= self.not_found_grace {
                        return Decision::Stop(StopReason::NotFound);
                    }
                    self.backoff(attempt, rng)
                }
            },
            ErrorClass::Throttled { retry_after } => {
                let backoff = self.backoff(attempt, rng);
                retry_after.map_or(backoff, |ra| ra.max(backoff))
            }
            ErrorClass::Transient | ErrorClass::Conflict => self.backoff(attempt, rng),
        };
        // Throttling is the cloud asking to come back later, not a failure of the request: it
        // is bounded by the time budget alone, so a throttled call keeps its attempts.
        let counts = !matches!(class, ErrorClass::Throttled { .. });
        if counts && attempt >= self.max_attempts {
            Decision::Stop(StopReason::AttemptsExhausted)
        } else if elapsed.saturating_add(after) > self.max_elapsed {
            Decision::Stop(StopReason::TimeExhausted)
        } else {
            Decision::Retry { after }
        }
    }

    /// The wait after failed attempt `attempt`: `initial · 2^(attempt-1)`, capped at
    /// `max_delay`, then jittered into `[d/2, d]` ("half fixed, half random": spreads a herd of
    /// throttled callers while keeping a floor).
    pub fn backoff<R: rand::Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let full = self
            .initial_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let half = full / 2;
        let jitter_nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.random_range(0..=jitter_nanos))
    }
}

/// A call that [`retry`] gave up on, with the last error.
#[derive(Debug)]
pub struct Stopped<E> {
    pub error: E,
    /// Why it stopped: `Replan`, `Done` or `Stop(_)` (never `Retry`).
    pub decision: Decision,
    pub attempts: u32,
    pub elapsed: Duration,
}

impl<E> Stopped<E> {
    /// The goal already holds (delete of a gone resource, read of an absent one).
    pub fn is_done(&self) -> bool {
        self.decision == Decision::Done
    }

    /// No capacity: the caller should choose another placement.
    pub fn is_replan(&self) -> bool {
        self.decision == Decision::Replan
    }
}

impl<E: fmt::Display> fmt::Display for Stopped<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.decision {
            Decision::Stop(reason) if self.attempts > 1 => write!(
                f,
                "{} ({reason} after {} attempts over {})",
                self.error,
                self.attempts,
                humantime::format_duration(round_ms(self.elapsed))
            ),
            _ => write!(f, "{}", self.error),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Stopped<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Calls `call(attempt)` until it succeeds or the policy stops it. Between attempts it sleeps
/// the decided delay; with a `ctx`, it reports each retry and stops early on cancel.
///
/// ```text
/// let ids = retry(&policy, Operation::Create, Some(&ctx), |_attempt| {
///     client.run_instances(&request)          // same request, same ClientToken, every attempt
/// }).await;
/// match ids {
///     Ok(ids) => ...,
///     Err(s) if s.is_replan() => /* next (type, zone) */,
///     Err(s) => return Err(s.into()),          // its Display says why it stopped
/// }
/// ```
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    op: Operation,
    ctx: Option<&StepContext>,
    mut call: F,
) -> Result<T, Stopped<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Classify + fmt::Display,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let error = match call(attempt).await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let class = error.class();
        let elapsed = start.elapsed();
        // The thread RNG is created and dropped here, never held across an await.
        let decision = policy.decide(class, op, attempt, elapsed, &mut rand::rng());
        let stopped = |error, decision| Stopped {
            error,
            decision,
            attempts: attempt,
            elapsed,
        };
        let Decision::Retry { after } = decision else {
            return Err(stopped(error, decision));
        };
        match ctx {
            Some(ctx) => {
                if ctx.is_cancelled() {
                    return Err(stopped(error, Decision::Stop(StopReason::Cancelled)));
                }
                ctx.retried(RetryNotice {
                    attempt,
                    delay: after,
                    class,
                    error: error.to_string(),
                });
                if ctx.sleep(after).await.is_err() {
                    return Err(stopped(error, Decision::Stop(StopReason::Cancelled)));
                }
            }
            None => tokio::time::sleep(after).await,
        }
    }
}

/// For deletes and reads: turns "stopped because it is already gone" into `Ok(None)`.
pub fn done_if_gone<T, E>(result: Result<T, Stopped<E>>) -> Result<Option<T>, Stopped<E>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(s) if s.is_done() => Ok(None),
        Err(s) => Err(s),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use petgraph::graph::NodeIndex;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::apply::event::{ApplyEventKind, EventLog};
    use crate::apply::executor::Cancel;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    const THROTTLED: ErrorClass = ErrorClass::Throttled { retry_after: None };

    #[test]
    fn each_class_gets_its_decision() {
        let p = RetryPolicy::default();
        let d = |class, op| p.decide(class, op, 1, Duration::ZERO, &mut rng());
        assert!(matches!(
            d(THROTTLED, Operation::Create),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            d(ErrorClass::Transient, Operation::Read),
            Decision::Retry { .. }
        ));
        assert!(matches!(
            d(ErrorClass::Conflict, Operation::Delete),
            Decision::Retry { .. }
        ));
        assert_eq!(
            d(ErrorClass::NoCapacity, Operation::Create),
            Decision::Replan
        );
        assert_eq!(d(ErrorClass::NotFound, Operation::Delete), Decision::Done);
        assert_eq!(d(ErrorClass::NotFound, Operation::Read), Decision::Done);
        assert!(matches!(
            d(ErrorClass::NotFound, Operation::Create),
            Decision::Retry { .. }
        ));
        assert_eq!(
            d(ErrorClass::Fatal, Operation::Create),
            Decision::Stop(StopReason::Fatal)
        );
        // A NotFound on create past the grace is no longer lag.
        assert_eq!(
            p.decide(
                ErrorClass::NotFound,
                Operation::Update,
                2,
                Duration::from_secs(61),
                &mut rng()
            ),
            Decision::Stop(StopReason::NotFound)
        );
    }

    #[test]
    fn backoff_doubles_from_half_a_second_to_twenty_with_equal_jitter() {
        let p = RetryPolicy::default();
        let mut r = rng();
        let expected_full = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000];
        for (i, full) in expected_full.iter().enumerate() {
            let attempt = i as u32 + 1;
            for _ in 0..200 {
                let d = p.backoff(attempt, &mut r).as_millis() as u64;
                assert!(
                    (full / 2..=*full).contains(&d),
                    "attempt {attempt}: {d} ms not in [{}, {full}]",
                    full / 2
                );
            }
        }
        // Jitter actually spreads callers.
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5, &mut r)).collect();
        assert!(spread.len() > 40);
        // Absurd attempt numbers do not overflow.
        assert!(p.backoff(u32::MAX, &mut r) <= p.max_delay);
    }

    #[test]
    fn retry_after_is_honoured_even_beyond_the_backoff() {
        let p = RetryPolicy::default();
        let class = ErrorClass::Throttled {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            p.decide(class, Operation::Create, 1, Duration::ZERO, &mut rng()),
            Decision::Retry {
                after: Duration::from_secs(30)
            }
        );
        // A tiny retry-after does not undercut the backoff floor.
        let class = ErrorClass::Throttled {
            retry_after: Some(Duration::from_millis(1)),
        };
        let Decision::Retry { after } =
            p.decide(class, Operation::Create, 3, Duration::ZERO, &mut rng())
        else {
            panic!()
        };
        assert!(after >= Duration::from_secs(1));
    }

    #[test]
    fn the_budget_bounds_attempts_and_time() {
        let p = RetryPolicy::default().with_budget(3, Duration::from_secs(10));
        let transient = ErrorClass::Transient;
        assert!(matches!(
            p.decide(transient, Operation::Read, 2, Duration::ZERO, &mut rng()),
            Decision::Retry { .. }
        ));
        assert_eq!(
            p.decide(transient, Operation::Read, 3, Duration::ZERO, &mut rng()),
            Decision::Stop(StopReason::AttemptsExhausted)
        );
        // Throttling keeps its attempts: only time bounds it.
        assert!(matches!(
            p.decide(THROTTLED, Operation::Read, 3, Duration::ZERO, &mut rng()),
            Decision::Retry { .. }
        ));
        assert_eq!(
            p.decide(
                THROTTLED,
                Operation::Read,
                1,
                Duration::from_millis(9_900),
                &mut rng()
            ),
            Decision::Stop(StopReason::TimeExhausted)
        );
        let long_wait = ErrorClass::Throttled {
            retry_after: Some(Duration::from_secs(60)),
        };
        assert_eq!(
            p.decide(long_wait, Operation::Read, 1, Duration::ZERO, &mut rng()),
            Decision::Stop(StopReason::TimeExhausted)
        );
    }

    /// A failed call of a scripted class.
    #[derive(Debug)]
    struct Failure(ErrorClass);

    impl Classify for Failure {
        fn class(&self) -> ErrorClass {
            self.0
        }
    }

    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    /// A scripted call: fails with `script[i]` on attempt i+1, succeeds after the script.
    fn scripted(
        script: Vec<ErrorClass>,
    ) -> (
        Arc<AtomicU32>,
        impl FnMut(u32) -> std::future::Ready<Result<u32, Failure>>,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = calls.clone();
        let f = move |attempt: u32| {
            counter.fetch_add(1, Ordering::SeqCst);
            std::future::ready(match script.get(attempt as usize - 1) {
                Some(class) => Err(Failure(*class)),
                None => Ok(attempt),
            })
        };
        (calls, f)
    }

    #[tokio::test(start_paused = true)]
    async fn retry_sleeps_the_backoff_then_succeeds() {
        let (calls, f) = scripted(vec![THROTTLED, ErrorClass::Transient, ErrorClass::Conflict]);
        let start = Instant::now();
        let got = retry(&RetryPolicy::default(), Operation::Create, None, f).await;
        assert_eq!(got.unwrap(), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        // Waits of [0.25, 0.5] + [0.5, 1] + [1, 2] seconds.
        let waited = start.elapsed();
        assert!(
            (Duration::from_millis(1750)..=Duration::from_millis(3500)).contains(&waited),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_honours_retry_after_exactly() {
        let ra = ErrorClass::Throttled {
            retry_after: Some(Duration::from_secs(7)),
        };
        let (_, f) = scripted(vec![ra]);
        let start = Instant::now();
        retry(&RetryPolicy::default(), Operation::Read, None, f)
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_never_loops_forever() {
        let (calls, f) = scripted(vec![ErrorClass::Transient; 1000]);
        let start = Instant::now();
        let stopped = retry(&RetryPolicy::default(), Operation::Create, None, f)
            .await
            .unwrap_err();
        assert_eq!(
            stopped.decision,
            Decision::Stop(StopReason::AttemptsExhausted)
        );
        assert_eq!(stopped.attempts, 10);
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        assert!(start.elapsed() <= RetryPolicy::default().max_elapsed);
        let text = stopped.to_string();
        assert!(
            text.starts_with("Transient (out of attempts after 10 attempts over "),
            "{text}"
        );

        // A cloud that keeps saying "retry after 2 minutes" hits the time budget instead.
        let slow = ErrorClass::Throttled {
            retry_after: Some(Duration::from_secs(120)),
        };
        let (calls, f) = scripted(vec![slow; 1000]);
        let stopped = retry(&RetryPolicy::default(), Operation::Read, None, f)
            .await
            .unwrap_err();
        assert_eq!(stopped.decision, Decision::Stop(StopReason::TimeExhausted));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_stops_at_once_on_fatal_replan_and_gone() {
        for (class, op, want) in [
            (
                ErrorClass::Fatal,
                Operation::Create,
                Decision::Stop(StopReason::Fatal),
            ),
            (ErrorClass::NoCapacity, Operation::Create, Decision::Replan),
            (ErrorClass::NotFound, Operation::Delete, Decision::Done),
        ] {
            let (calls, f) = scripted(vec![class]);
            let start = Instant::now();
            let s = retry(&RetryPolicy::default(), op, None, f)
                .await
                .unwrap_err();
            assert_eq!(s.decision, want);
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(start.elapsed(), Duration::ZERO);
        }
        let (_, f) = scripted(vec![ErrorClass::NotFound]);
        let gone = done_if_gone(retry(&RetryPolicy::default(), Operation::Delete, None, f).await);
        assert!(matches!(gone, Ok(None)));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_reports_each_retry_and_stops_on_cancel() {
        let log = Arc::new(EventLog::default());
        let cancel = Cancel::new();
        let ctx = StepContext::new(NodeIndex::new(3), log.clone(), cancel.clone());
        let (_, f) = scripted(vec![THROTTLED, THROTTLED]);
        retry(&RetryPolicy::default(), Operation::Create, Some(&ctx), f)
            .await
            .unwrap();
        let retried: Vec<_> = log
            .of(NodeIndex::new(3))
            .into_iter()
            .filter_map(|k| match k {
                ApplyEventKind::Retried(n) => Some((n.attempt, n.class)),
                _ => None,
            })
            .collect();
        assert_eq!(retried, vec![(1, THROTTLED), (2, THROTTLED)]);

        // Cancelled during a long wait: stops without the remaining attempts.
        let (calls, f) = scripted(vec![ErrorClass::Transient; 100]);
        let c = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            c.cancel();
        });
        let policy = RetryPolicy {
            initial_delay: Duration::from_secs(10),
            ..RetryPolicy::default()
        };
        let start = Instant::now();
        let s = retry(&policy, Operation::Create, Some(&ctx), f)
            .await
            .unwrap_err();
        assert_eq!(s.decision, Decision::Stop(StopReason::Cancelled));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::from_millis(300));
    }
}
