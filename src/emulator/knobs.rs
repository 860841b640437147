//! Realism knobs and fault injection: how slow the emulated cloud is, how often it fails, and
//! how hard it throttles. Set at start (flags, [`super::EmulatorConfig`]) and changed at run time
//! (`POST /_emulator/faults` with a partial JSON object, or in-process).

use std::collections::HashMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::world::Delays;

/// Every knob. Durations are milliseconds of emulated time unless named `latency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Knobs {
    /// Emulated seconds per real second (10 = ten times faster).
    pub clock_speed: f64,
    /// RunInstances → `Running` (a quarter `Pending`, then `Starting`).
    pub boot_delay_ms: u64,
    /// CreateVpc / CreateVSwitch → `Available`.
    pub network_delay_ms: u64,
    /// CreateImage / CopyImage → `Available`.
    pub image_delay_ms: u64,
    /// DeleteInstances → gone; until then the instance is `Stopping` and still blocks deleting
    /// its vSwitch and security groups (`DependencyViolation`).
    pub release_delay_ms: u64,
    /// New resources are invisible to Describe*/List* calls for this long.
    pub consistency_window_ms: u64,
    /// Requests per second allowed per (region, action); `null` = unlimited.
    pub throttle_rate: Option<f64>,
    /// Burst of the throttling token bucket.
    pub throttle_burst: u32,
    /// Probability (0–1) that a call is refused with `Throttling.User` whatever the rate: a
    /// fixed share of throttled calls, for tests that want "30 % throttling".
    pub throttle_probability: f64,
    /// Probability (0–1) that a call fails with `ServiceUnavailable` (503) or `InternalError`
    /// (500) before it touches the world.
    pub error_rate: f64,
    /// Real milliseconds added to every API call.
    pub latency_ms: u64,
}

impl Default for Knobs {
    /// Instant and fault-free: what tests want unless they ask otherwise.
    fn default() -> Self {
        Self {
            clock_speed: 1.0,
            boot_delay_ms: 0,
            network_delay_ms: 0,
            image_delay_ms: 0,
            release_delay_ms: 0,
            consistency_window_ms: 0,
            throttle_rate: None,
            throttle_burst: 10,
            throttle_probability: 0.0,
            error_rate: 0.0,
            latency_ms: 0,
        }
    }
}

impl Knobs {
    /// Figures in the range the real service shows (aliyun-api.md §5): a half-minute boot,
    /// seconds for networks, minutes for images, a second of read lag, 20 requests/s per action.
    pub fn realistic() -> Self {
        Self {
            boot_delay_ms: 30_000,
            network_delay_ms: 3_000,
            image_delay_ms: 120_000,
            release_delay_ms: 10_000,
            consistency_window_ms: 1_000,
            throttle_rate: Some(20.0),
            throttle_burst: 40,
            ..Self::default()
        }
    }

    pub fn delays(&self) -> Delays {
        Delays {
            boot_ms: self.boot_delay_ms,
            network_ms: self.network_delay_ms,
            image_ms: self.image_delay_ms,
            release_ms: self.release_delay_ms,
        }
    }

    /// Applies a partial JSON object (`{"error_rate": 0.1}`); unknown keys and bad values are
    /// refused and change nothing.
    pub fn patched(&self, patch: &serde_json::Value) -> Result<Knobs, String> {
        let serde_json::Value::Object(fields) = patch else {
            return Err("expected a JSON object of knobs".into());
        };
        let mut current = serde_json::to_value(self).map_err(|e| e.to_string())?;
        let obj = current
            .as_object_mut()
            .expect("knobs serialize to an object");
        for (k, v) in fields {
            if !obj.contains_key(k) {
                return Err(format!(
                    "unknown knob `{k}`; known: {}",
                    obj.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            obj.insert(k.clone(), v.clone());
        }
        let knobs: Knobs = serde_json::from_value(current).map_err(|e| e.to_string())?;
        knobs.check()?;
        Ok(knobs)
    }

    pub fn check(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.throttle_probability) {
            return Err(format!(
                "`throttle_probability` {} is not between 0 and 1",
                self.throttle_probability
            ));
        }
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Err(format!(
                "`error_rate` {} is not between 0 and 1",
                self.error_rate
            ));
        }
        if !(self.clock_speed.is_finite() && self.clock_speed >= 0.0) {
            return Err(format!(
                "`clock_speed` {} must be 0 or more",
                self.clock_speed
            ));
        }
        if self
            .throttle_rate
            .is_some_and(|r| !(r.is_finite() && r > 0.0))
        {
            return Err("`throttle_rate` must be above 0 (or null for no throttling)".into());
        }
        Ok(())
    }
}

/// Token buckets per (region, action), in real time: the service throttles per account, per
/// region, per API operation (aliyun-api.md §5).
#[derive(Debug, Default)]
pub struct Throttle {
    /// (region, action) → (tokens, last refill). Bounded by regions × actions.
    buckets: HashMap<(String, String), (f64, Instant)>,
}

impl Throttle {
    /// Takes a token, or says how many milliseconds until one is available.
    pub fn take(&mut self, region: &str, action: &str, rate: f64, burst: u32) -> Result<(), u64> {
        let now = Instant::now();
        let burst = f64::from(burst.max(1));
        let entry = self
            .buckets
            .entry((region.to_string(), action.to_string()))
            .or_insert((burst, now));
        let refill = now.duration_since(entry.1).as_secs_f64() * rate;
        entry.0 = (entry.0 + refill).min(burst);
        entry.1 = now;
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            Ok(())
        } else {
            let wait_ms = ((1.0 - entry.0) / rate * 1000.0).ceil() as u64;
            Err(wait_ms.max(1))
        }
    }

    pub fn clear(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_partial_and_checked() {
        let k = Knobs::default();
        let p = k
            .patched(&serde_json::json!({"error_rate": 0.5, "throttle_rate": 2.0}))
            .unwrap();
        assert_eq!(p.error_rate, 0.5);
        assert_eq!(p.throttle_rate, Some(2.0));
        assert_eq!(p.boot_delay_ms, 0);
        assert!(
            k.patched(&serde_json::json!({"eror_rate": 0.5}))
                .unwrap_err()
                .contains("unknown knob")
        );
        assert!(k.patched(&serde_json::json!({"error_rate": 2})).is_err());
        assert!(
            k.patched(&serde_json::json!({"boot_delay_ms": "soon"}))
                .is_err()
        );
        let off = p
            .patched(&serde_json::json!({"throttle_rate": null}))
            .unwrap();
        assert_eq!(off.throttle_rate, None);
    }

    #[test]
    fn bucket_allows_a_burst_then_says_when() {
        let mut t = Throttle::default();
        for _ in 0..3 {
            t.take("r", "A", 1.0, 3).unwrap();
        }
        let wait = t.take("r", "A", 1.0, 3).unwrap_err();
        assert!((900..=1000).contains(&wait), "{wait}");
        // Buckets are per (region, action).
        t.take("r", "B", 1.0, 3).unwrap();
        t.take("r2", "A", 1.0, 3).unwrap();
    }
}
