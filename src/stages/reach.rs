//! `reach`: every host answers over its transport (SSH, or its local slot).
//!
//! Each host runs `echo` through its transport, with `reach_attempts` tries `reach_retry_delay`
//! apart (a new cloud host may still be starting sshd). Hosts that never answer are listed in
//! the output ([`ReachOutput::unreachable`], with instance ids) for the hosts resource, which
//! deletes and replaces them; more than `reach_budget` of them fails the stage, so nothing
//! downstream runs on a partial fleet by accident.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env::{InputContext, StageEnv, StageHost};
use super::nodes::hosts_part;
use super::plan::Inputs;
use super::progress::Counter;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::{BoxFuture, TransportError};

/// A host that did not answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreachableHost {
    pub label: String,
    pub instance_id: String,
    pub ip: String,
    pub region: String,
    pub error: String,
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
                .filter_map(|(h, r)| {
                    r.err().map(|e| UnreachableHost {
                        label: h.host.label.clone(),
                        instance_id: h.host.record.instance_id.clone(),
                        ip: h.host.record.ip.to_string(),
                        region: h.host.record.region.clone(),
                        error: e.to_string(),
                    })
                })
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

async fn probe(env: &StageEnv, step: &StepContext, h: &StageHost) -> Result<(), TransportError> {
    let attempts = env.options.reach_attempts.max(1);
    let mut last = None;
    for attempt in 1..=attempts {
        match h
            .transport
            .output(PROBE, Some(env.options.command_timeout))
            .await
        {
            Ok(out) if out.status.success() && out.stdout == b"cfxm-reach\n" => return Ok(()),
            Ok(out) => {
                // It ran but did not answer as a POSIX shell would: retrying will not help.
                let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
                return Err(TransportError::RemoteExit {
                    host: h.transport.host().to_owned(),
                    command: PROBE.into(),
                    status: out.status,
                    stderr,
                });
            }
            Err(e) => last = Some(e),
        }
        if attempt < attempts && step.sleep(env.options.reach_retry_delay).await.is_err() {
            break;
        }
    }
    Err(last.expect("at least one attempt"))
}
