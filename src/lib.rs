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
//! | [`state`] | the state directory and the original tool's `hosts.json` format |
//! | [`analyze`] | node logs → latency statistics, the original's table, `report.{txt,json,md}` and plots |
//!
//! Libraries never print: they return values or emit events, and `cli` draws them.

pub mod analyze;
pub mod cli;
pub mod provider;
pub mod spec;
pub mod state;
