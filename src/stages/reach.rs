//! `reach`: every host answers over its transport (SSH, or its local slot).
//!
//! Each host runs `echo` through its transport, with `reach_attempts` tries `reach_retry_delay`
//! apart (a new cloud host may still be starting sshd). Hosts that never answer are listed in
//! the output ([`ReachOutput::unreachable`], with instance ids) for the hosts resource, which
//! deletes and replaces them; more than `reach_budget` of them fails the stage, so nothing
//! downstream runs on a partial fleet by accident.
//!
//! The hand-over: the plan reads the latest `reach` record ([`last_unreachable`]) and the
//! hosts diff destroys and replaces every discovered instance listed there
//! ([`replace_reason`]); `cfxm apply` re-plans within the same command when `reach` fails so
//! (bounded rounds). The plan also probes the hosts once ([`probe_hosts`], one attempt each)
//! when `reach` is current but a later stage is about to run, so a host that died since the
//! last apply is replaced before the stages work on it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env::{InputContext, StageEnv, StageHost, StageOptions};
use super::nodes::hosts_part;
use super::plan::Inputs;
use super::plan::LastRun;
use super::progress::Counter;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::{BoxFuture, TransportError};
use crate::state::JournalLog;

/// A host that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableHost {
    pub label: String,
    pub instance_id: String,
    pub ip: String,
    /// The inventory's `provider` (`aliyun`, `aws`, `local`); empty in records of older cfxm.
    #[serde(default)]
    pub cloud: String,
    pub region: String,
    pub error: String,
}

impl UnreachableHost {
    fn of(h: &StageHost, e: &TransportError) -> Self {
        UnreachableHost {
            label: h.host.label.clone(),
            instance_id: h.host.record.instance_id.clone(),
            ip: h.host.record.ip.to_string(),
            cloud: h.host.record.provider.clone(),
            region: h.host.record.region.clone(),
            error: e.to_string(),
        }
    }

    /// The error's first line without the host's name in front (the plan line names the
    /// host already), at most 160 characters.
    pub fn short_error(&self) -> String {
        let first = self.error.lines().next().unwrap_or_default();
        // `<label> (local <slot>): <cause>`: the transport's name for the host leads.
        let line = first
            .strip_prefix(self.label.as_str())
            .and_then(|rest| rest.split_once(": ").map(|(_, cause)| cause))
            .unwrap_or(first);
        if line.chars().count() <= 160 {
            line.to_owned()
        } else {
            let mut s: String = line.chars().take(157).collect();
            s.push_str("...");
            s
        }
    }
}

/// Where the plan learnt that a host does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Listed by the latest `reach` record.
    LastReach,
    /// The plan's own liveness check ([`probe_hosts`]).
    Probe,
}

/// The hosts diff's reason to replace `h`.
pub fn replace_reason(h: &UnreachableHost, seen: Seen) -> String {
    let when = match seen {
        Seen::LastReach => "at the last `reach`",
        Seen::Probe => "a liveness check just now",
    };
    format!(
        "it did not answer {when} ({}); an unreachable host is replaced",
        h.short_error()
    )
}

/// The hosts the latest `reach` record lists as unreachable (failed or within its budget).
pub fn last_unreachable(log: &JournalLog) -> Vec<UnreachableHost> {
    LastRun::of(log, StageId::Reach)
        .and_then(|r| serde_json::from_value::<ReachOutput>(r.result).ok())
        .map(|o| o.unreachable)
        .unwrap_or_default()
}

/// One probe of every host (no retries: this is a liveness check, not a boot wait), bounded
/// by `options.host_parallelism`; the hosts that did not answer, in `hosts` order.
pub async fn probe_hosts(hosts: &[StageHost], options: &StageOptions) -> Vec<UnreachableHost> {
    let probes: Vec<_> = hosts
        .iter()
        .map(|h| async move { (h, probe_once(h, options).await) })
        .collect();
    let mut results = bounded(probes, options.host_parallelism).await;
    results.sort_by_key(|(h, _)| hosts.iter().position(|x| x.host.label == h.host.label));
    results
        .into_iter()
        .filter_map(|(h, r)| r.err().map(|e| UnreachableHost::of(h, &e)))
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReachOutput {
    pub hosts: usize,
    pub reachable: usize,
    pub unreachable: Vec<UnreachableHost>,
}

/// `reach`: see the module docs.
pub struct Reach;

const PROBE: &str = "echo cfxm-reach";

impl Stage for Reach {
    fn id(&self) -> StageId {
        StageId::Reach
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        Ok(hosts_part(Inputs::new(), cx.hosts()?))
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let counter = Counter::new(step, "hosts reached", env.hosts.len() as u64);
            let mut probes = Vec::new();
            for h in env.hosts.iter() {
                let counter = &counter;
                probes.push(async move {
                    let r = probe(env, step, h).await;
                    counter.tick(r.is_ok());
                    (h, r)
                });
            }
            let mut results = bounded(probes, env.options.host_parallelism).await;
            results
                .sort_by_key(|(h, _)| env.hosts.iter().position(|x| x.host.label == h.host.label));
            let unreachable: Vec<UnreachableHost> = results
                .into_iter()
                .filter_map(|(h, r)| r.err().map(|e| UnreachableHost::of(h, &e)))
                .collect();
            let out = ReachOutput {
                hosts: env.hosts.len(),
                reachable: env.hosts.len() - unreachable.len(),
                unreachable,
            };
            let value = serde_json::to_value(&out).expect("serializes");
            let allowed = env.options.reach_budget.allowed(out.hosts);
            if out.unreachable.len() > allowed {
                let first = &out.unreachable[0];
                return Err(Failure::with_outputs(
                    StageError::OverBudget {
                        stage: StageId::Reach,
                        what: "hosts",
                        failed: out.unreachable.len(),
                        total: out.hosts,
                        allowed,
                        first: first.error.clone(),
                    },
                    value,
                ));
            }
            Ok(value)
        })
    }
}

/// How one probe attempt ended.
enum Probe {
    Answered,
    Wrong(TransportError),
    Failed(TransportError),
}

async fn probe_attempt(h: &StageHost, options: &StageOptions) -> Probe {
    match h
        .transport
        .output(PROBE, Some(options.command_timeout))
        .await
    {
        Ok(out) if out.status.success() && out.stdout == b"cfxm-reach\n" => Probe::Answered,
        Ok(out) => {
            // It ran but did not answer as a POSIX shell would: retrying will not help.
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Probe::Wrong(TransportError::RemoteExit {
                host: h.transport.host().to_owned(),
                command: PROBE.into(),
                status: out.status,
                stderr,
            })
        }
        Err(e) => Probe::Failed(e),
    }
}

async fn probe_once(h: &StageHost, options: &StageOptions) -> Result<(), TransportError> {
    match probe_attempt(h, options).await {
        Probe::Answered => Ok(()),
        Probe::Wrong(e) | Probe::Failed(e) => Err(e),
    }
}

async fn probe(env: &StageEnv, step: &StepContext, h: &StageHost) -> Result<(), TransportError> {
    let attempts = env.options.reach_attempts.max(1);
    let mut last = None;
    for attempt in 1..=attempts {
        match probe_attempt(h, &env.options).await {
            Probe::Answered => return Ok(()),
            Probe::Wrong(e) => return Err(e),
            Probe::Failed(e) => last = Some(e),
        }
        if attempt < attempts && step.sleep(env.options.reach_retry_delay).await.is_err() {
            break;
        }
    }
    Err(last.expect("at least one attempt"))
}
