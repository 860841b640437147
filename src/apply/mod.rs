//! Apply: executing a plan's DAG of changes in parallel, within rate budgets, with one retry
//! policy, journaling every mutation. This module holds the provider-independent machinery; the
//! resource code (what a `Create` of a vSwitch or a hosts group does) lives with the plan and
//! provider and plugs in as the executor's work.
//!
//! | piece | owns |
//! | --- | --- |
//! | [`executor`] | [`Executor`]: ready-queue over a petgraph DAG, bounded parallelism, skip-on-failure, cancel, [`ApplyReport`] |
//! | [`event`] | [`ApplyEvent`]s and the [`Reporter`] trait (the CLI draws; libraries never print) |
//! | [`rate`] | [`RateBuckets`]: token buckets per (region, [`ApiClass`]) plus per region |
//! | [`retry`](mod@retry) | [`RetryPolicy::decide`]: `ErrorClass` → retry / re-plan / done / stop; [`retry()`] runs a call under it |
//! | [`mutation`] | [`journaled`]: intent → call under the retry policy → outcome; [`Mutations`] for providers |
//! | [`hosts`] | placement over (type × zone), partial fills, stock-outs, waiting for `Running`, replacing hosts that never run, limits |
//! | [`run`](mod@run) | `cfxm plan` / `apply` / `destroy` as library functions: prepare (lock, settle, discover, plan), then execute |
//! | [`reconcile`] | a [`crate::plan::Plan`] as a step DAG ([`steps`]), executed ([`execute`]); settling interrupted calls ([`settle`]) |
//!
//! # How the pieces fit (for `apply::run`, built on top)
//!
//! ```text
//! // Once per apply:
//! let lock = state.lock("cfxm apply")?;                   // crate::state
//! let journal = state.journal(&lock)?;
//! let buckets = Arc::new(RateBuckets::new(RateLimits::default())?);  // handed to the client,
//!                                                         // which acquires before each request
//! let policy = RetryPolicy::default();
//! let executor = Executor::new(reporter)                  // reporter: Arc<dyn Reporter> from cli
//!     .parallelism(opts.parallelism)                      // --parallelism, default 256
//!     .cancel_with(ctrl_c_cancel);
//!
//! // The plan is a DiGraph<Change, _>, edge a → b meaning "b needs a".
//! let report = executor.run(&plan.graph, |change, ctx| {
//!     let (change, journal, client, policy) = (change.clone(), journal.clone(), client.clone(), policy.clone());
//!     async move {
//!         match change.action {
//!             Action::Create => {
//!                 let intent = Intent { address: change.address.clone(), action: "CreateVpc".into(),
//!                                       client_token: Some(ClientToken::derive(&scope, &change.address, 0)),
//!                                       params: json!({ "CidrBlock": "10.0.0.0/16", ... }) };
//!                 let (vpc_id, _) = journaled(&journal, intent, &policy, Operation::Create, Some(&ctx),
//!                                             |id: &String| vec![id.clone()],
//!                                             |_attempt| client.create_vpc(&req)).await?;
//!                 ctx.progress(format!("created {vpc_id}"));
//!                 Ok(Applied::Vpc(vpc_id))
//!             }
//!             // Hosts: loop over (type, zone) candidates; each RunInstances is one journaled
//!             // call; `Err(MutationError::Call(s)) if s.is_replan()` moves to the next
//!             // candidate; report ready/wanted with ctx.progress_count(...).
//!             ...
//!         }
//!     }
//! }).await?;
//! // report.failures() are the root causes (each once); report.skipped_by(root) their fallout.
//! ```
//!
//! Passing values between nodes: a node's `Applied(T)` value is in the report only at the end,
//! so work that needs an upstream's output (the vSwitch needs the VPC id) reads it from shared
//! state the upstream wrote (e.g. an `Arc<Mutex<HashMap<Address, LiveId>>>`), which the DAG
//! order makes safe. The unit test `tests::worked_example_*` below runs this shape end to end.

pub mod event;
pub mod executor;
pub mod hosts;
pub mod mutation;
pub mod rate;
pub mod reconcile;
pub mod retry;
pub mod run;

pub use event::{
    ApplyEvent, ApplyEventKind, EventLog, Finish, Progress, Reporter, RetryNotice, Silent,
};
pub use executor::{
    ApplyReport, Cancel, Cancelled, Counts, DEFAULT_PARALLELISM, Executor, ExecutorError, Outcome,
    StepContext,
};
pub use hosts::{HostTiming, LimitGuard};
pub use mutation::{MutationError, Mutations, StepError, journaled};
pub use rate::{ApiClass, Rate, RateBuckets, RateError, RateLimits};
pub use reconcile::{
    ApplyError, ApplyOptions, ApplyResult, BackfillMove, HostsSummary, Phase, Step, StepOutput,
    Target, execute, settle, steps,
};
pub use retry::{
    Classify, Decision, Operation, RetryPolicy, StopReason, Stopped, done_if_gone, retry,
};

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::fmt;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use petgraph::graph::{DiGraph, NodeIndex};
    use serde_json::json;

    use super::*;
    use crate::provider::ErrorClass;
    use crate::spec::{RegionId, SpecName};
    use crate::state::{Address, ClientToken, Intent, StateDir};

    /// The error a client would return, classified once.
    #[derive(Debug, Clone)]
    struct ApiError {
        code: &'static str,
        class: ErrorClass,
    }

    impl Classify for ApiError {
        fn class(&self) -> ErrorClass {
            self.class
        }
    }

    impl fmt::Display for ApiError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.code)
        }
    }

    /// A stand-in for the cloud in this composition test: it throttles the first call of every
    /// action, has no stock for the first zone, and hands out ids. Only the wiring is under test
    /// here; the real client is tested against the emulator in its own module.
    #[derive(Default)]
    struct Cloud {
        seen: Mutex<HashMap<String, u32>>,
        ids: Mutex<u32>,
    }

    impl Cloud {
        async fn call(&self, action: &str, zone: Option<&str>) -> Result<Vec<String>, ApiError> {
            let n = {
                let mut seen = self.seen.lock().unwrap();
                let n = seen.entry(action.to_owned()).or_default();
                *n += 1;
                *n
            };
            tokio::time::sleep(Duration::from_millis(50)).await;
            if n == 1 {
                return Err(ApiError {
                    code: "Throttling.User",
                    class: ErrorClass::Throttled { retry_after: None },
                });
            }
            if zone == Some("zone-a") {
                return Err(ApiError {
                    code: "OperationDenied.NoStock",
                    class: ErrorClass::NoCapacity,
                });
            }
            let mut ids = self.ids.lock().unwrap();
            *ids += 1;
            Ok(vec![format!("{action}-{}", *ids)])
        }
    }

    #[derive(Clone)]
    struct Change {
        address: Address,
        action: &'static str,
    }

    #[tokio::test(start_paused = true)]
    async fn worked_example_of_the_pieces_composed() {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::new(tmp.path())
            .spec(&SpecName::new("demo"))
            .unwrap();
        let lock = state.lock("cfxm apply").unwrap();
        let journal = state.journal(&lock).unwrap();
        let cloud = Arc::new(Cloud::default());
        let buckets = Arc::new(RateBuckets::new(RateLimits::default()).unwrap());
        let live: Arc<Mutex<HashMap<Address, Vec<String>>>> = Arc::default();

        let mut g = DiGraph::new();
        let node = |g: &mut DiGraph<Change, ()>, a: &str, action| {
            g.add_node(Change {
                address: Address::new(a).unwrap(),
                action,
            })
        };
        let vpc = node(&mut g, "aliyun/r1/vpc", "CreateVpc");
        let vsw = node(&mut g, "aliyun/r1/vswitch/zone-b", "CreateVSwitch");
        let hosts = node(&mut g, "aliyun/r1/hosts", "RunInstances");
        g.add_edge(vpc, vsw, ());
        g.add_edge(vsw, hosts, ());

        let events = Arc::new(EventLog::default());
        let report = Executor::new(events.clone())
            .run(&g, |change, ctx| {
                let change = change.clone();
                let (journal, cloud, buckets, live) = (
                    journal.clone(),
                    cloud.clone(),
                    buckets.clone(),
                    live.clone(),
                );
                async move {
                    let region = RegionId::new("r1");
                    // Hosts try zones in preference order; a stock-out moves to the next.
                    let zones: &[&str] = if change.action == "RunInstances" {
                        &["zone-a", "zone-b"]
                    } else {
                        &[""]
                    };
                    for (generation, zone) in zones.iter().enumerate() {
                        let intent = Intent {
                            address: change.address.clone(),
                            action: change.action.into(),
                            client_token: Some(ClientToken::derive(
                                "demo/plan-1",
                                &change.address,
                                generation as u32,
                            )),
                            params: json!({ "ZoneId": zone }),
                        };
                        let result = journaled(
                            &journal,
                            intent,
                            &RetryPolicy::default(),
                            Operation::Create,
                            Some(&ctx),
                            |ids: &Vec<String>| ids.clone(),
                            |_| {
                                let (cloud, buckets, region) =
                                    (cloud.clone(), buckets.clone(), region.clone());
                                let action = change.action;
                                let zone = (!zone.is_empty()).then_some(*zone);
                                async move {
                                    buckets.acquire(&region, ApiClass::of_action(action)).await;
                                    cloud.call(action, zone).await
                                }
                            },
                        )
                        .await;
                        match result {
                            Ok((ids, _)) => {
                                ctx.progress(format!("created {}", ids.join(",")));
                                live.lock().unwrap().insert(change.address.clone(), ids);
                                return Ok(());
                            }
                            Err(MutationError::Call(s)) if s.is_replan() => continue,
                            Err(e) => return Err(e.to_string()),
                        }
                    }
                    Err("no zone has stock".to_owned())
                }
            })
            .await
            .unwrap();

        assert!(report.is_success(), "{report:?}");
        assert_eq!(live.lock().unwrap().len(), 3);
        // Every action was throttled once and retried; hosts also hit a stock-out in zone-a.
        let retried = |n: NodeIndex| {
            events
                .of(n)
                .iter()
                .filter(|k| matches!(k, ApplyEventKind::Retried(_)))
                .count()
        };
        assert_eq!((retried(vpc), retried(vsw), retried(hosts)), (1, 1, 1));
        let log = journal.log();
        assert!(log.pending_intents().is_empty());
        let hosts_intents: Vec<_> = log
            .intents_for(&Address::new("aliyun/r1/hosts").unwrap())
            .map(|(s, i)| (log.outcome_of(s).cloned(), i.params["ZoneId"].clone()))
            .collect();
        assert_eq!(hosts_intents.len(), 2);
        assert!(matches!(
            hosts_intents[0],
            (Some(crate::state::OutcomeResult::Failed { .. }), _)
        ));
        assert_eq!(hosts_intents[1].1, "zone-b");
    }
}
