//! `transactions`: each node's built-in transaction generator gets its own genesis accounts
//! (original-tool.md §2.7): `test_sendUsableGenesisAccounts(index · txgen_account_count)`,
//! where `index` is the node's position among all slots, so ranges never overlap. Nodes whose
//! call fails count against `transactions_budget`. With `tps: 0` there is no generator and
//! nothing to do.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env::{InputContext, StageEnv};
use super::nodes::{experiment_config, live_nodes};
use super::plan::Inputs;
use super::progress::Counter;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::BoxFuture;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionsOutput {
    pub nodes: usize,
    pub accounts_per_node: u64,
    pub started: usize,
    pub failed: Vec<(String, String)>,
}

/// `transactions`: see the module docs.
pub struct Transactions;

impl Stage for Transactions {
    fn id(&self) -> StageId {
        StageId::Transactions
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        Ok(Inputs::new().with("transactions.tps", cx.spec.experiment.transactions.tps))
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let nodes = live_nodes(env, StageId::Transactions)?;
            let hosts = env.host_list();
            let config = experiment_config(&env.input_context(&hosts))?;
            let per_node = config.int("txgen_account_count").unwrap_or(0).max(0) as u64;
            let mut out = TransactionsOutput {
                nodes: nodes.len(),
                accounts_per_node: per_node,
                ..TransactionsOutput::default()
            };
            let generating = !matches!(
                config.get("generate_tx"),
                Some(crate::spec::ConfigValue::Bool(false))
            );
            if !generating {
                step.progress("transaction generation is off (`tps: 0`)");
                return Ok(serde_json::to_value(&out).expect("serializes"));
            }
            let counter = Counter::new(step, "generators started", nodes.len() as u64);
            let mut calls = Vec::new();
            for node in &nodes {
                let counter = &counter;
                calls.push(async move {
                    let start = node.index as u64 * per_node;
                    let r = env.rpc.send_usable_genesis_accounts(&node.rpc, start).await;
                    counter.tick(r.is_ok());
                    (node, r)
                });
            }
            for (node, r) in bounded(calls, env.options.rpc_parallelism).await {
                match r {
                    Ok(()) => out.started += 1,
                    Err(e) => out.failed.push((node.name.clone(), e.to_string())),
                }
            }
            out.failed.sort();
            let value = serde_json::to_value(&out).expect("serializes");
            let allowed = env.options.transactions_budget.allowed(nodes.len());
            if out.failed.len() > allowed {
                let (node, why) = &out.failed[0];
                return Err(Failure::with_outputs(
                    StageError::OverBudget {
                        stage: StageId::Transactions,
                        what: "nodes",
                        failed: out.failed.len(),
                        total: nodes.len(),
                        allowed,
                        first: format!("{node}: {why}"),
                    },
                    value,
                ));
            }
            Ok(value)
        })
    }
}
