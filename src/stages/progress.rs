//! Counting progress for a stage: one event per change at most every 200 ms (10,000 nodes
//! must not mean 10,000 redraws), with an ETA once there is a rate to go by.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::apply::StepContext;

/// A count of `total` things, reported as `"<label> done/total[, N failed][, ETA 25s]"`.
pub(crate) struct Counter<'a> {
    step: &'a StepContext,
    label: &'static str,
    total: u64,
    started: Instant,
    /// (done, failed, last report).
    state: Mutex<(u64, u64, Option<Instant>)>,
    /// When the work is planned to end (a schedule), for a better ETA than the rate so far.
    end: Option<Instant>,
}

const EVERY: Duration = Duration::from_millis(200);

impl<'a> Counter<'a> {
    pub(crate) fn new(step: &'a StepContext, label: &'static str, total: u64) -> Self {
        let c = Counter {
            step,
            label,
            total,
            started: Instant::now(),
            state: Mutex::new((0, 0, None)),
            end: None,
        };
        c.step
            .progress_count(0, total, format!("{label} 0/{total}"));
        c
    }

    /// One more done (`ok`) or failed.
    pub(crate) fn tick(&self, ok: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if ok {
            s.0 += 1;
        } else {
            s.1 += 1;
        }
        let now = Instant::now();
        let finished = s.0 + s.1 >= self.total;
        if finished || s.2.is_none_or(|t| now - t >= EVERY) {
            s.2 = Some(now);
            let eta = self.eta(s.0 + s.1, now);
            self.emit(s.0, s.1, eta);
        }
    }

    /// The same counter, with the ETA taken from a planned end.
    pub(crate) fn ending_at(mut self, end: Instant) -> Self {
        self.end = Some(end);
        self
    }

    fn eta(&self, finished: u64, now: Instant) -> Option<Duration> {
        if let Some(end) = self.end {
            return Some(end.saturating_duration_since(now));
        }
        let elapsed = now - self.started;
        (finished > 0 && finished < self.total && elapsed >= Duration::from_secs(2))
            .then(|| elapsed.mul_f64((self.total - finished) as f64 / finished as f64))
    }

    fn emit(&self, done: u64, failed: u64, eta: Option<Duration>) {
        let mut msg = format!("{} {done}/{}", self.label, self.total);
        if failed > 0 {
            msg.push_str(&format!(", {failed} failed"));
        }
        if let Some(eta) = eta.filter(|_| done + failed < self.total) {
            msg.push_str(&format!(", ETA {}", short(eta)));
        }
        self.step.progress_count(done, self.total, msg);
    }
}

/// `25s`, `4m10s`.
pub(crate) fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use petgraph::graph::NodeIndex;

    use super::*;
    use crate::apply::{ApplyEventKind, Cancel, EventLog};

    #[tokio::test(start_paused = true)]
    async fn counts_are_throttled_and_the_last_one_always_reported() {
        let log = Arc::new(EventLog::default());
        let step = StepContext::new(NodeIndex::new(0), log.clone(), Cancel::new());
        let c = Counter::new(&step, "nodes ready", 4);
        c.tick(true);
        c.tick(true); // within 200 ms: not reported
        tokio::time::advance(Duration::from_secs(3)).await;
        c.tick(false);
        c.tick(true);
        let msgs: Vec<String> = log
            .events()
            .into_iter()
            .filter_map(|e| match e.kind {
                ApplyEventKind::Progress(p) => Some(p.message),
                _ => None,
            })
            .collect();
        assert_eq!(
            msgs,
            [
                "nodes ready 0/4",
                "nodes ready 1/4",
                "nodes ready 2/4, 1 failed, ETA 1s",
                "nodes ready 3/4, 1 failed"
            ]
        );
        assert_eq!(short(Duration::from_secs(250)), "4m10s");
    }
}
