//! Rate budgets: token buckets per (region, API class) plus one per region, so cfxm stays under
//! the cloud's throttling thresholds instead of hitting them and backing off
//! (original-tool.md §5.6: the original burned a placement candidate on every throttle).
//!
//! Aliyun counts API rates per account, per region, per action, and does not publish the
//! numbers (aliyun-api.md §5); the defaults follow its advice to start around 10 requests/s per
//! action and 20/s per region in total. Actions are grouped into [`ApiClass`]es by verb, so a
//! flood of status polls cannot starve the create calls of the same region, and the region
//! bucket caps their sum.
//!
//! Use: the cloud client calls `buckets.acquire(&region, ApiClass::of_action(action)).await`
//! before each request, and [`RateBuckets::throttled`] when a response says `Throttling*`, which
//! pauses that bucket for everyone (honouring `retry_after`), not only for the caller that was
//! refused. One `RateBuckets` is shared (`Arc`) by every task of an apply.
//!
//! Each bucket hands out *reservations*: a caller takes the next token even if it lies in the
//! future and sleeps until then, so waiters are served in arrival order with one sleep each and
//! no polling. A caller dropped while sleeping forfeits its slot (the rate errs low, never high).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use miette::Diagnostic;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;

use crate::spec::RegionId;

/// Groups of cloud API actions that share a rate budget within a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiClass {
    /// Describe*, List*: discovery and status polls.
    Read,
    /// RunInstances, Create*, Import*, Allocate*: calls that create billable things.
    Create,
    /// Delete*, Release*.
    Delete,
    /// Everything else that changes state: Authorize*, Revoke*, Modify*, tagging, start/stop.
    Modify,
}

impl ApiClass {
    pub const ALL: [ApiClass; 4] = [
        ApiClass::Read,
        ApiClass::Create,
        ApiClass::Delete,
        ApiClass::Modify,
    ];

    /// The class of an API action by its verb, e.g. `DescribeInstances` → `Read`.
    pub fn of_action(action: &str) -> Self {
        let starts = |prefixes: &[&str]| prefixes.iter().any(|p| action.starts_with(p));
        if starts(&["Describe", "List", "Get", "Query"]) {
            ApiClass::Read
        } else if starts(&["Run", "Create", "Import", "Allocate", "Copy"]) {
            ApiClass::Create
        } else if starts(&["Delete", "Release", "Terminate"]) {
            ApiClass::Delete
        } else {
            ApiClass::Modify
        }
    }
}

impl fmt::Display for ApiClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiClass::Read => "read",
            ApiClass::Create => "create",
            ApiClass::Delete => "delete",
            ApiClass::Modify => "modify",
        })
    }
}

/// A sustained rate and the burst allowed above it after a quiet spell.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u32,
}

impl Rate {
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Rate { per_second, burst }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/s (burst {})", self.per_second, self.burst)
    }
}

/// The rates cfxm keeps to, per region. Configurable (deserializable, e.g. from a spec's
/// `limits`), checked by [`RateLimits::validate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    /// Describe*/List* per region: polls of 100 instances each, so 10/s reads 1,000
    /// instances' status per second.
    pub read: Rate,
    /// Create calls per region: each RunInstances brings up to 100 hosts, so 5/s is plenty.
    pub create: Rate,
    /// Delete calls per region.
    pub delete: Rate,
    /// Other mutations per region.
    pub modify: Rate,
    /// All classes together per region (aliyun-api.md §5: ~20/s).
    pub region_total: Rate,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            read: Rate::new(10.0, 10),
            create: Rate::new(5.0, 5),
            delete: Rate::new(5.0, 5),
            modify: Rate::new(5.0, 5),
            region_total: Rate::new(20.0, 20),
        }
    }
}

/// A rate that cannot be kept.
#[derive(Debug, Clone, PartialEq, Error, Diagnostic)]
#[error("the `{name}` rate {rate} is not usable: {reason}")]
#[diagnostic(
    code(cfxm::apply::bad_rate),
    help("rates are requests per second above 0, with a burst of at least 1")
)]
pub struct RateError {
    pub name: &'static str,
    pub rate: Rate,
    pub reason: &'static str,
}

impl RateLimits {
    pub fn rate(&self, class: ApiClass) -> Rate {
        match class {
            ApiClass::Read => self.read,
            ApiClass::Create => self.create,
            ApiClass::Delete => self.delete,
            ApiClass::Modify => self.modify,
        }
    }

    pub fn validate(&self) -> Result<(), RateError> {
        for (name, rate) in [
            ("read", self.read),
            ("create", self.create),
            ("delete", self.delete),
            ("modify", self.modify),
            ("region_total", self.region_total),
        ] {
            let reason = if !rate.per_second.is_finite() || rate.per_second <= 0.0 {
                Some("requests per second must be above 0")
            } else if rate.burst == 0 {
                Some("the burst must be at least 1")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(RateError { name, rate, reason });
            }
        }
        Ok(())
    }
}

/// The buckets of one apply, created on first use per (region, class).
#[derive(Debug)]
pub struct RateBuckets {
    limits: RateLimits,
    /// One bucket per (region, class): paces each kind of call in each region.
    classes: Mutex<HashMap<(RegionId, ApiClass), Arc<Bucket>>>,
    /// One bucket per region: caps the region's calls of all classes together.
    totals: Mutex<HashMap<RegionId, Arc<Bucket>>>,
}

impl RateBuckets {
    /// Buckets keeping to `limits`.
    pub fn new(limits: RateLimits) -> Result<Self, RateError> {
        limits.validate()?;
        Ok(RateBuckets {
            limits,
            classes: Mutex::new(HashMap::new()),
            totals: Mutex::new(HashMap::new()),
        })
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Waits until a call of `class` in `region` fits both its class budget and the region's.
    pub async fn acquire(&self, region: &RegionId, class: ApiClass) {
        // Class first, then region: reserving the region slot only once the class admits the
        // call keeps a queue of one class from holding region slots it cannot use yet.
        let class_bucket = self.class_bucket(region, class);
        tokio::time::sleep_until(class_bucket.reserve()).await;
        let total = self.total_bucket(region);
        tokio::time::sleep_until(total.reserve()).await;
    }

    /// The cloud throttled a call of `class` in `region`: nobody gets that budget for
    /// `retry_after` (1 s if the cloud did not say), so the other waiters slow down too.
    pub fn throttled(&self, region: &RegionId, class: ApiClass, retry_after: Option<Duration>) {
        let pause = retry_after.unwrap_or(Duration::from_secs(1));
        self.class_bucket(region, class).pause(pause);
    }

    fn class_bucket(&self, region: &RegionId, class: ApiClass) -> Arc<Bucket> {
        let mut map = self.classes.lock().unwrap_or_else(|e| e.into_inner());
        map.entry((region.clone(), class))
            .or_insert_with(|| Arc::new(Bucket::new(self.limits.rate(class))))
            .clone()
    }

    fn total_bucket(&self, region: &RegionId) -> Arc<Bucket> {
        let mut map = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(region.clone())
            .or_insert_with(|| Arc::new(Bucket::new(self.limits.region_total)))
            .clone()
    }
}

/// A token bucket that may go into debt: a negative balance is the queue of reservations.
#[derive(Debug)]
struct Bucket {
    rate: Rate,
    /// Tokens (possibly negative) as of `updated`.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: Rate) -> Self {
        Bucket {
            rate,
            state: Mutex::new((f64::from(rate.burst), Instant::now())),
        }
    }

    /// Refills for the time passed and returns the locked balance.
    fn refill(&self, state: &mut (f64, Instant), now: Instant) {
        let (tokens, updated) = state;
        let passed = now.saturating_duration_since(*updated).as_secs_f64();
        *tokens = (*tokens + passed * self.rate.per_second).min(f64::from(self.rate.burst));
        *updated = now;
    }

    /// Takes the next token; returns when it is due (now, or when the debt is repaid).
    fn reserve(&self) -> Instant {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut state, now);
        state.0 -= 1.0;
        if state.0 >= 0.0 {
            now
        } else {
            now + Duration::from_secs_f64(-state.0 / self.rate.per_second)
        }
    }

    /// Empties the bucket so that no token is due before `pause` from now.
    fn pause(&self, pause: Duration) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        self.refill(&mut state, now);
        // A balance of -r·p is repaid at rate r after p; the next reservation waits past it.
        let floor = -(pause.as_secs_f64() * self.rate.per_second) + 1.0;
        state.0 = state.0.min(floor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(r: &str) -> RegionId {
        RegionId::new(r)
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) <= Duration::from_millis(1)
    }

    #[test]
    fn actions_fall_into_classes_by_verb() {
        for (action, class) in [
            ("DescribeInstances", ApiClass::Read),
            ("DescribeInstanceStatus", ApiClass::Read),
            ("ListTagResources", ApiClass::Read),
            ("RunInstances", ApiClass::Create),
            ("CreateVpc", ApiClass::Create),
            ("ImportKeyPair", ApiClass::Create),
            ("DeleteInstances", ApiClass::Delete),
            ("DeleteVSwitch", ApiClass::Delete),
            ("AuthorizeSecurityGroup", ApiClass::Modify),
            ("TagResources", ApiClass::Modify),
        ] {
            assert_eq!(ApiClass::of_action(action), class, "{action}");
        }
    }

    #[test]
    fn unusable_rates_are_refused() {
        let mut limits = RateLimits::default();
        limits.create.per_second = 0.0;
        let err = RateBuckets::new(limits).unwrap_err();
        assert_eq!(err.name, "create");
        let mut limits = RateLimits::default();
        limits.region_total.burst = 0;
        assert!(RateBuckets::new(limits).is_err());
        let mut limits = RateLimits::default();
        limits.read.per_second = f64::NAN;
        assert!(limits.validate().is_err());
        assert!(RateLimits::default().validate().is_ok());
    }

    #[test]
    fn limits_deserialize_from_config() {
        let limits: RateLimits = serde_json::from_str(
            r#"{"read":{"per_second":50,"burst":50},"create":{"per_second":2,"burst":1},
                "delete":{"per_second":5,"burst":5},"modify":{"per_second":5,"burst":5},
                "region_total":{"per_second":60,"burst":60}}"#,
        )
        .unwrap();
        assert_eq!(limits.create, Rate::new(2.0, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_then_calls_are_paced_at_the_rate() {
        let buckets = RateBuckets::new(RateLimits::default()).unwrap();
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..25 {
            buckets.acquire(&region("r1"), ApiClass::Read).await;
            times.push(start.elapsed());
        }
        // 10 at once (the burst), then one per 100 ms.
        assert!(
            times[..10].iter().all(|t| *t == Duration::ZERO),
            "{times:?}"
        );
        for (i, t) in times[10..].iter().enumerate() {
            let want = Duration::from_millis(100 * (i as u64 + 1));
            assert!(close(*t, want), "call {}: {t:?} != {want:?}", i + 10);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_are_served_in_order_at_the_rate() {
        let limits = RateLimits {
            create: Rate::new(5.0, 1),
            ..RateLimits::default()
        };
        let buckets = Arc::new(RateBuckets::new(limits).unwrap());
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let b = buckets.clone();
            tasks.spawn(async move {
                b.acquire(&region("r1"), ApiClass::Create).await;
                start.elapsed()
            });
        }
        let mut times = tasks.join_all().await;
        times.sort();
        // One now, then one per 200 ms: 20 calls take 3.8 s, never two in the same slot.
        assert!(close(times[19], Duration::from_millis(3800)), "{times:?}");
        for w in times.windows(2) {
            assert!(close(w[1] - w[0], Duration::from_millis(200)), "{times:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn classes_and_regions_do_not_starve_each_other() {
        let buckets = RateBuckets::new(RateLimits::default()).unwrap();
        // Drain region r1's read budget.
        for _ in 0..10 {
            buckets.acquire(&region("r1"), ApiClass::Read).await;
        }
        let start = Instant::now();
        buckets.acquire(&region("r1"), ApiClass::Create).await;
        buckets.acquire(&region("r2"), ApiClass::Read).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        buckets.acquire(&region("r1"), ApiClass::Read).await;
        assert!(close(start.elapsed(), Duration::from_millis(100)));
    }

    #[tokio::test(start_paused = true)]
    async fn the_region_total_caps_all_classes_together() {
        let limits = RateLimits {
            read: Rate::new(100.0, 100),
            modify: Rate::new(100.0, 100),
            region_total: Rate::new(20.0, 20),
            ..RateLimits::default()
        };
        let buckets = RateBuckets::new(limits).unwrap();
        let start = Instant::now();
        for i in 0..40 {
            let class = if i % 2 == 0 {
                ApiClass::Read
            } else {
                ApiClass::Modify
            };
            buckets.acquire(&region("r1"), class).await;
        }
        // 20 from the burst, 20 more at 20/s.
        assert!(
            close(start.elapsed(), Duration::from_secs(1)),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_response_pauses_the_bucket_for_everyone() {
        let buckets = RateBuckets::new(RateLimits::default()).unwrap();
        let start = Instant::now();
        buckets.acquire(&region("r1"), ApiClass::Create).await;
        buckets.throttled(
            &region("r1"),
            ApiClass::Create,
            Some(Duration::from_secs(3)),
        );
        buckets.acquire(&region("r1"), ApiClass::Create).await;
        assert!(
            close(start.elapsed(), Duration::from_secs(3)),
            "{:?}",
            start.elapsed()
        );
        // Without a retry-after, a one-second pause; other classes are unaffected.
        buckets.throttled(&region("r1"), ApiClass::Create, None);
        let t = Instant::now();
        buckets.acquire(&region("r1"), ApiClass::Read).await;
        assert_eq!(t.elapsed(), Duration::ZERO);
        buckets.acquire(&region("r1"), ApiClass::Create).await;
        assert!(
            close(t.elapsed(), Duration::from_secs(1)),
            "{:?}",
            t.elapsed()
        );
    }
}
