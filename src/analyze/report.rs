//! The report as data: what `report.json` holds and every renderer reads.
//!
//! Times are seconds unless a field says otherwise. Values that do not exist (a percentile of an
//! empty set) are `null`, never NaN or zero. `schemas/report.schema.json` is generated from these
//! types ([`json_schema_text`]); a test fails when the checked-in copy drifts.

use serde::Serialize;

use super::input::Compression;
use super::stats::Summary;

/// Version of the `report.json` layout; bumped on incompatible changes.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// A run's latency report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// Layout version of this document.
    pub schema_version: u32,
    /// The cfxm version that wrote it.
    pub tool: String,
    /// The run directory analysed, as given.
    pub run_dir: String,
    /// Node logs found (one node per log).
    pub nodes: u64,
    /// The headline: block latency measured from the generating node's own log time of the block
    /// ("new block inserted into graph" on the node that did not receive it), with the original's
    /// row names and the spec's percentiles.
    pub headline: LatencyTable,
    /// The original tool's output (stat_latency_rs): header-timestamp latencies, event stages,
    /// transactions, block scalars and sync/consensus gaps, with its fixed percentile set.
    pub original: OriginalReport,
    /// How far the header-timestamp method is off on this very data.
    pub bias: Bias,
    /// Which node logged which block; blocks missing on some nodes are counted, not dropped.
    pub coverage: Coverage,
    /// Headline Receive latency pooled over the nodes of each group (region, or host).
    pub groups: Vec<GroupLatency>,
    /// Points of the pooled latency CDFs (for plots).
    pub distributions: Distributions,
    /// What was read.
    pub input: InputStats,
    /// Things a reader must know: malformed lines, unreadable logs, incomplete blocks.
    pub warnings: Vec<String>,
}

/// A latency table: named rows of across-block summaries.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct LatencyTable {
    /// How latency was measured: `generator-log-time` or `header-timestamp`.
    pub method: String,
    /// The percentile columns (and node quantiles), in (0, 100].
    pub percentiles: Vec<f64>,
    /// Blocks the table covers.
    pub blocks: u64,
    pub rows: Vec<TableRow>,
}

/// One row; a `blank` row separates groups as the original's table does.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableRow {
    /// The row's name, e.g. `block broadcast latency (Receive/P50)`; empty for a blank row.
    pub name: String,
    pub format: RowFormat,
    /// Null for a blank row.
    pub summary: Option<Summary>,
}

/// How a row's numbers print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RowFormat {
    /// Two decimals (`%.2f`).
    Fixed2,
    /// An integer when whole, else two decimals (block scalars, gaps).
    IntegerOrFixed2,
    /// A separator row.
    Blank,
}

/// The original tool's figures, computed as it computes them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OriginalReport {
    pub nodes: u64,
    /// Blocks seen by at least one node (the original drops blocks not seen by every node; cfxm
    /// keeps them and reports coverage instead).
    pub blocks: u64,
    /// Sampled transactions not received by every node.
    pub removed_txs: u64,
    /// Sampled transactions never packed.
    pub unpacked_txs: u64,
    /// Sampled transactions tracked.
    pub total_txs: u64,
    /// Sum of the blocks' tx counts.
    pub txs_generated: u64,
    /// Max − min header timestamp over blocks with transactions (whole seconds).
    pub duration_s: f64,
    /// `txs_generated / duration_s`; null when the duration is 0.
    pub throughput: Option<f64>,
    pub slowest_packed_tx: Option<String>,
    /// The header-timestamp latency rows and everything else the original prints.
    pub table: LatencyTable,
}

/// The header-timestamp method's offset from the log-time method.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Bias {
    /// Per block: generator log time − header timestamp (s). The header stores whole seconds, so
    /// this is uniform on [0, 1) and adds to every latency the original reports.
    pub per_block: Summary,
    /// Per (block, receiving node): header-method Receive latency − log-time Receive latency (s).
    pub receive: Summary,
    /// The percentiles of both summaries (always the original's set).
    pub percentiles: Vec<f64>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Coverage {
    /// Blocks seen by at least one node.
    pub blocks_seen: u64,
    /// Blocks every node inserted into its graph.
    pub blocks_complete: u64,
    /// Blocks some node never inserted; their percentiles use the nodes that did.
    pub blocks_incomplete: u64,
    /// Blocks whose generator line is missing (no node inserted it without receiving it); they are
    /// left out of the headline, which needs the generator's time.
    pub blocks_without_generator: u64,
    pub blocks: Vec<BlockCoverage>,
    pub nodes: Vec<NodeCoverage>,
}

/// One block: who made it, who saw it, how fast.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct BlockCoverage {
    pub hash: String,
    pub height: u64,
    /// Header timestamp (whole unix seconds).
    pub header_timestamp: i64,
    pub txs: u64,
    pub size: u64,
    /// The generating node, if its line was found.
    pub generator: Option<String>,
    /// Generation time, seconds after the first generated block.
    pub generated_s: Option<f64>,
    pub nodes_received: u64,
    pub nodes_synced: u64,
    pub nodes_cons: u64,
    /// Headline Receive latency across the nodes that received it (s).
    pub receive_p50: Option<f64>,
    pub receive_p90: Option<f64>,
    pub receive_max: Option<f64>,
}

/// One node: how much of the run it logged.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NodeCoverage {
    pub node: String,
    pub group: String,
    pub compression: Compression,
    /// Blocks it inserted into its graph, of `coverage.blocks_seen`.
    pub blocks_synced: u64,
    pub blocks_received: u64,
    pub blocks_cons: u64,
    pub blocks_generated: u64,
    /// Decompressed bytes read.
    pub bytes: u64,
    pub matched_lines: u64,
    pub malformed_lines: u64,
    /// The log could not be read to its end.
    pub unreadable: bool,
}

/// Headline Receive latency over one group's nodes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct GroupLatency {
    pub group: String,
    pub nodes: u64,
    /// Pooled over (block, node) pairs of the group, at the headline's percentiles.
    pub receive: Summary,
}

/// CDF points `[latency s, fraction]`, at most a few hundred per series.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Distributions {
    pub receive: Vec<[f64; 2]>,
    pub sync: Vec<[f64; 2]>,
    pub cons: Vec<[f64; 2]>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct InputStats {
    pub files: u64,
    /// Bytes on disk (compressed where compressed).
    pub disk_bytes: u64,
    /// Bytes after decompression.
    pub bytes: u64,
    pub matched_lines: u64,
    pub malformed_lines: u64,
    /// Worker threads used.
    pub threads: u64,
    /// Wall time of reading and parsing, milliseconds.
    pub elapsed_ms: u64,
}

/// The JSON Schema of `report.json` (draft 2020-12).
pub fn json_schema() -> serde_json::Value {
    let mut schema = serde_json::to_value(schemars::schema_for!(Report))
        .expect("a schemars schema is plain JSON");
    if let Some(obj) = schema.as_object_mut() {
        obj.insert(
            "$id".into(),
            "https://github.com/cfxm/cfxm/schemas/report.schema.json".into(),
        );
    }
    schema
}

/// The schema as pretty JSON with a trailing newline: `schemas/report.schema.json`.
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).expect("JSON serializes");
    text.push('\n');
    text
}
