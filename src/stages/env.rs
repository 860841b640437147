//! What a stage works with: [`StageEnv`] (the spec, the hosts and their transports, the state
//! directory and journal, one RPC client) and its knobs, [`StageOptions`]. The reconciler
//! builds one `StageEnv` once the hosts exist; tests build one over local slots.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::StageError;
use super::catalogue::StageId;
use super::rpc::RpcClient;
use crate::spec::Spec;
use crate::ssh::Transport;
use crate::ssh::hosts::Host;
use crate::state::{Journal, SpecState, StageStatus, StateLock};

/// What [`Stage::inputs`](super::Stage::inputs) may look at: no network, no journal.
#[derive(Clone, Copy)]
pub struct InputContext<'a> {
    pub spec: &'a Spec,
    /// `None` while the plan will still create or replace hosts.
    pub hosts: Option<&'a [Host]>,
    pub options: &'a StageOptions,
}

impl<'a> InputContext<'a> {
    /// The hosts, or [`StageError::HostsPending`].
    pub fn hosts(&self) -> Result<&'a [Host], StageError> {
        self.hosts.ok_or(StageError::HostsPending)
    }
}

/// What a live check ([`Stage::check`](super::Stage::check)) may use: the hosts and how to
/// reach them, no journal writer and no lock, so `cfxm plan` can run checks while another
/// command holds the spec.
#[derive(Clone, Copy)]
pub struct LiveContext<'a> {
    pub hosts: &'a [StageHost],
    pub options: &'a StageOptions,
}

/// One host a stage works on: its inventory record and how to reach it.
#[derive(Clone)]
pub struct StageHost {
    pub host: Host,
    pub transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for StageHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageHost")
            .field("label", &self.host.label)
            .field("ip", &self.host.record.ip)
            .finish_non_exhaustive()
    }
}

/// Everything a running stage needs.
pub struct StageEnv {
    pub spec: Arc<Spec>,
    pub state: SpecState,
    /// Proof the caller holds the spec's lock (run directories are created under it).
    pub lock: Arc<StateLock>,
    pub journal: Journal,
    /// In inventory order; node indices follow it.
    pub hosts: Arc<[StageHost]>,
    pub rpc: RpcClient,
    pub options: StageOptions,
}

impl StageEnv {
    /// A stage environment over `hosts` with default RPC settings from `options`.
    pub fn new(
        spec: Arc<Spec>,
        state: SpecState,
        lock: Arc<StateLock>,
        journal: Journal,
        hosts: Vec<StageHost>,
        options: StageOptions,
    ) -> Self {
        let rpc = RpcClient::new(options.rpc_parallelism, options.rpc_timeout);
        StageEnv {
            spec,
            state,
            lock,
            journal,
            hosts: hosts.into(),
            rpc,
            options,
        }
    }

    /// The inventory records of the hosts, for [`InputContext::hosts`].
    pub fn host_list(&self) -> Vec<Host> {
        self.hosts.iter().map(|h| h.host.clone()).collect()
    }

    pub fn live_context(&self) -> LiveContext<'_> {
        LiveContext {
            hosts: &self.hosts,
            options: &self.options,
        }
    }

    pub fn input_context<'a>(&'a self, hosts: &'a [Host]) -> InputContext<'a> {
        InputContext {
            spec: &self.spec,
            hosts: Some(hosts),
            options: &self.options,
        }
    }

    /// The result an upstream stage recorded when it last succeeded.
    pub fn outputs_of<T: DeserializeOwned>(
        &self,
        stage: StageId,
        upstream: StageId,
    ) -> Result<T, StageError> {
        let record = self.journal.with_log(|log| {
            log.latest_stage(&upstream.name())
                .map(|(_, r)| (r.status, r.outputs.clone()))
        });
        match record {
            Some((StageStatus::Succeeded, outputs)) => {
                let result = outputs
                    .get("result")
                    .cloned()
                    .unwrap_or(serde_json::Value::Null);
                serde_json::from_value(result).map_err(|e| StageError::BadRecord {
                    upstream,
                    problem: e.to_string(),
                })
            }
            _ => Err(StageError::MissingUpstream { stage, upstream }),
        }
    }
}

/// How many failures of `total` a stage tolerates: `max(at_least, floor(fraction × total))`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub fraction: f64,
    pub at_least: usize,
}

impl Budget {
    /// No failure allowed.
    pub const NONE: Budget = Budget {
        fraction: 0.0,
        at_least: 0,
    };

    pub fn fraction(fraction: f64) -> Self {
        Budget {
            fraction,
            at_least: 0,
        }
    }

    /// Failures allowed among `total`.
    pub fn allowed(&self, total: usize) -> usize {
        let share = (self.fraction.clamp(0.0, 1.0) * total as f64).floor() as usize;
        share.max(self.at_least).min(total)
    }
}

/// Where cloud hosts get the node image from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageFanout {
    /// Every host pulls from the image's registry.
    #[default]
    Registry,
    /// The original's per-zone tree: the first host of each zone pulls from the registry and
    /// serves a `registry:2` on port 5000; each other host pulls from its binary-heap parent
    /// (original-tool.md §2.2).
    ZoneTree,
}

/// The stages' knobs. Defaults follow the original tool where it had a number, with failure
/// budgets where it aborted or silently dropped.
#[derive(Debug, Clone)]
pub struct StageOptions {
    /// The `cfxm` binary local (devnode) hosts run as `cfxm devnode`; `None`: this executable.
    pub devnode_bin: Option<PathBuf>,
    /// Hosts worked on at once by transport-heavy steps (start, stop, collect).
    pub host_parallelism: usize,
    /// Node RPC calls in flight at once.
    pub rpc_parallelism: usize,
    /// Timeout of one RPC call (the harness's 60 s).
    pub rpc_timeout: Duration,
    /// Timeout of one short remote command (launch, stop, check).
    pub command_timeout: Duration,

    /// `reach`: attempts per host, the pause between them, and how many hosts may stay
    /// unreachable (the reconciler replaces them).
    pub reach_attempts: u32,
    pub reach_retry_delay: Duration,
    pub reach_budget: Budget,

    /// `image`: how cloud hosts get the image; timeout of one pull.
    pub image_fanout: ImageFanout,
    pub image_pull_timeout: Duration,

    /// `nodes`: how long a node has to answer `test_sayHello` and reach `NormalSyncPhase`,
    /// and how many nodes may fail to start.
    pub ready_timeout: Duration,
    pub nodes_budget: Budget,

    /// `topology`: how long to wait for every dialled peer to show in `test_getPeerInfo`, and
    /// how many nodes may end with too few peers (the original aborted past 10).
    pub connect_timeout: Duration,
    pub topology_budget: Budget,

    /// `transactions`: nodes whose generator may fail to start.
    pub transactions_budget: Budget,

    /// `blocks`: failed `test_generateOneBlock` calls tolerated (the original: none), the wait
    /// for outstanding calls after the last block, and the bounded sync wait after it.
    pub blocks_budget: Budget,
    pub blocks_drain_timeout: Duration,
    pub sync_timeout: Duration,

    /// How long a node has to exit after SIGTERM before it is killed (when `nodes` restarts
    /// them, and when the local cloud removes a slot).
    pub stop_timeout: Duration,
    /// `collect`: how many nodes' logs may be missing.
    pub collect_budget: Budget,
}

impl Default for StageOptions {
    fn default() -> Self {
        StageOptions {
            devnode_bin: None,
            host_parallelism: 64,
            rpc_parallelism: 256,
            rpc_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(120),
            reach_attempts: 3,
            reach_retry_delay: Duration::from_secs(5),
            reach_budget: Budget::NONE,
            image_fanout: ImageFanout::Registry,
            image_pull_timeout: Duration::from_secs(1800),
            ready_timeout: Duration::from_secs(60),
            nodes_budget: Budget::fraction(0.05),
            connect_timeout: Duration::from_secs(120),
            topology_budget: Budget::fraction(0.05),
            transactions_budget: Budget::fraction(0.05),
            blocks_budget: Budget::fraction(0.01),
            blocks_drain_timeout: Duration::from_secs(60),
            sync_timeout: Duration::from_secs(300),
            stop_timeout: Duration::from_secs(20),
            collect_budget: Budget::fraction(0.05),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_round_down_with_a_floor() {
        assert_eq!(Budget::NONE.allowed(100), 0);
        assert_eq!(Budget::fraction(0.05).allowed(8), 0);
        assert_eq!(Budget::fraction(0.05).allowed(10_000), 500);
        let b = Budget {
            fraction: 0.01,
            at_least: 2,
        };
        assert_eq!(b.allowed(50), 2);
        assert_eq!(b.allowed(1), 1);
    }
}
