//! The emulated clock: wall-clock time run at a speed factor, and jumpable forward. Life cycles
//! (boot, async networks, image creation, release) are measured on it, so a test can run a
//! 40-second boot in 4 seconds (speed 10) or instantly (`advance`). Request signatures are
//! checked against the real clock, never this one.

use std::time::{Duration, Instant};

use super::world::Millis;

#[derive(Debug, Clone)]
pub struct Clock {
    /// Emulated time at `base_real`.
    base_ms: Millis,
    base_real: Instant,
    speed: f64,
}

impl Clock {
    /// Starts at `start_ms` (emulated), running at `speed`.
    pub fn new(start_ms: Millis, speed: f64) -> Self {
        Self {
            base_ms: start_ms,
            base_real: Instant::now(),
            speed: sane(speed),
        }
    }

    pub fn now_ms(&self) -> Millis {
        let real = self.base_real.elapsed().as_secs_f64() * 1000.0;
        self.base_ms + (real * self.speed) as Millis
    }

    #[cfg(test)]
    pub fn speed(&self) -> f64 {
        self.speed
    }

    /// Changes the speed from now on, keeping the current time.
    pub fn set_speed(&mut self, speed: f64) {
        self.base_ms = self.now_ms();
        self.base_real = Instant::now();
        self.speed = sane(speed);
    }

    /// Jumps forward.
    pub fn advance(&mut self, by: Duration) {
        self.base_ms += by.as_millis() as Millis;
    }
}

fn sane(speed: f64) -> f64 {
    if speed.is_finite() && speed >= 0.0 {
        speed
    } else {
        1.0
    }
}

/// Wall-clock milliseconds since the epoch (the default start of a fresh world).
pub fn wall_ms() -> Millis {
    chrono::Utc::now().timestamp_millis()
}

/// `2024-01-02T03:04Z`, the ECS instance time format.
pub fn ecs_minutes(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%MZ")
        .to_string()
}

/// `2024-01-02T03:04:05Z`, the VPC / security group / key pair time format.
pub fn seconds(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_and_advance() {
        let mut c = Clock::new(1_000, 0.0);
        assert_eq!(c.now_ms(), 1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now_ms(), 3_000);
        c.set_speed(f64::NAN);
        assert_eq!(c.speed(), 1.0);
        assert_eq!(ecs_minutes(0), "1970-01-01T00:00Z");
        assert_eq!(seconds(61_000), "1970-01-01T00:01:01Z");
    }
}
