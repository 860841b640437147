//! cfxm runs massive Conflux test networks on cloud servers as a declarative reconciler.
//!
//! A spec (YAML) says what should exist; cfxm discovers what does exist by its tags, plans the
//! difference as a dependency graph, and applies it in parallel. Modules are the phases of that
//! flow (DESIGN §4):
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | clap definitions; each command builds an options struct and calls one library function |
//! | [`spec`] | YAML → validated [`spec::Spec`]; located diagnostics; the JSON Schema |
//! | [`provider`] | cloud API clients and the classification of their errors |
//! | [`discover`] | live state by exact tags, every region in parallel; the only place tags become addresses |
//! | [`plan`] | the desired graph, the diff, [`plan::Plan`] (a DAG of changes with its basis), saved plans |
//! | [`render`] | plans as text (Terraform's grammar, grouped for 10,000 nodes), markdown and JSON |
//! | [`state`] | the state directory: lock, journal, inventory (+ the original's `hosts.json`), run directories |
//! | [`apply`] | the executor: ready-queue over the DAG, rate budgets, the retry policy, journaled mutations, events |
//! | [`ssh`] | reaching hosts: the `Transport` trait over russh and local processes, host lists, fan-out |
//! | [`stages`] | the experiment as resources: reach, image, nodes, topology, transactions, blocks, collect, report |
//! | [`devnode`] | the stand-in Conflux node: config keys, JSON-RPC, peer gossip, the log lines |
//! | [`analyze`] | node logs → latency statistics, the original's table, `report.{txt,json,md}` and plots |
//! | [`emulator`] | the built-in Aliyun-compatible cloud (ECS + VPC over HTTP), in-process or `cfxm emulator serve` |
//! | [`local`] | the local cloud: the emulator in-process under the state dir, instances backed by host slots |
//! | [`show`] | what a spec has now: hosts found by tags beside the inventory, nodes, stage records, runs, the last report |
//!
//! Libraries never print: they return values or emit events, and `cli` draws them.

pub mod analyze;
pub mod apply;
pub mod cli;
pub mod devnode;
pub mod discover;
pub mod emulator;
pub mod local;
pub mod plan;
pub mod provider;
pub mod render;
pub mod show;
pub mod spec;
pub mod ssh;
pub mod stages;
pub mod state;
