//! The devnode area: `cfxm devnode` processes on loopback, driven like the harness drives
//! Conflux nodes, and their logs read the way the analysis reads them.

mod cli;
mod harness;
mod latency;
mod logcheck;
mod network;
mod rpc;
