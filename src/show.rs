//! `cfxm show`: what a spec has now, from the state directory and the live world (DESIGN §2):
//! the hosts discovery finds by the spec's tags beside the inventory's, whether the nodes
//! still run (the `nodes` stage's live check), each stage's last record, the runs and the last
//! report. It only reads: no lock, and the local cloud's world is loaded read-only.
//!
//! [`show`] gathers a [`Shown`]; [`render_text`] draws it for people, and `Shown` serializes to
//! JSON for machines.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::apply::run::CommandError;
use crate::discover;
use crate::plan::{Context, Settings};
use crate::spec::Spec;
use crate::ssh::hosts::{Connector, HostList};
use crate::stages::StageId;
use crate::state::{StageStatus, StateDir};

/// Everything `cfxm show` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub spec: String,
    pub owner: String,
    /// When the live world was read.
    pub discovered_at: DateTime<Utc>,
    /// Per region with anything tagged: what discovery found.
    pub regions: Vec<RegionShown>,
    /// Hosts in the inventory (`state/<spec>/hosts.json`), and those of them discovery did
    /// not find (gone behind cfxm's back).
    pub inventory_hosts: usize,
    pub inventory_missing: Vec<String>,
    /// Nodes the inventory's hosts should run, and whether they still run (`None`: not
    /// checked, e.g. the nodes never started).
    pub nodes: u64,
    pub nodes_live: Option<String>,
    pub stages: Vec<StageShown>,
    /// Run directories, oldest first.
    pub runs: Vec<PathBuf>,
    pub last_report: Option<ReportShown>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RegionShown {
    /// `local/ap-southeast-1`.
    pub region: String,
    /// Tagged resources other than hosts (network, subnets, security group, key pair).
    pub resources: usize,
    pub hosts: Vec<HostShown>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostShown {
    pub id: String,
    pub zone: String,
    pub instance_type: String,
    pub status: String,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageShown {
    pub stage: StageId,
    /// `never ran`, `interrupted`, `succeeded`, `failed`.
    pub status: String,
    pub at: Option<DateTime<Utc>>,
    /// One line from its outputs: `8/8 nodes ready`, `300/300 blocks, synced`.
    pub summary: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReportShown {
    pub run_dir: PathBuf,
    pub files: Vec<PathBuf>,
    /// The headline table, as `cfxm report` prints it first.
    pub headline: String,
}

/// Reads the state and the live world of `spec`.
pub async fn show(
    spec: Spec,
    state_dir: &StateDir,
    settings: Settings,
    on_discover: &(dyn Fn(discover::Event) + Send + Sync),
) -> Result<Shown, CommandError> {
    let settings = Settings {
        read_only: true,
        ..settings
    };
    let ctx = Context::new(spec, state_dir, &settings).map_err(CommandError::Plan)?;
    let live = discover::live(&ctx.discovery(), on_discover).await?;
    let log = ctx.state.read_journal()?;

    let mut regions = Vec::new();
    let mut found_ids = std::collections::BTreeSet::new();
    for (key, r) in &live.regions {
        if r.resources.is_empty() && r.instances.is_empty() {
            continue;
        }
        let mut hosts: Vec<HostShown> = r
            .instances
            .iter()
            .map(|i| {
                found_ids.insert(i.id.clone());
                HostShown {
                    id: i.id.clone(),
                    zone: i.zone.to_string(),
                    instance_type: i.instance_type.to_string(),
                    status: i.status.to_string(),
                    public_ip: i.public_ip.map(|a| a.to_string()),
                    private_ip: i.private_ip.map(|a| a.to_string()),
                }
            })
            .collect();
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        regions.push(RegionShown {
            region: format!("{}/{}", key.cloud, key.region),
            resources: r.resources.len(),
            hosts,
        });
    }

    let hosts = HostList::for_spec(&ctx.spec, &ctx.state).ok();
    let listed = hosts.as_ref().map(HostList::hosts).unwrap_or_default();
    let inventory_missing: Vec<String> = listed
        .iter()
        .filter(|h| h.origin.is_managed() && !found_ids.contains(&h.record.instance_id))
        .map(|h| h.label.clone())
        .collect();
    let nodes = crate::stages::nodes::node_count(listed);

    // Whether the nodes still run: the `nodes` stage's own live check.
    let nodes_live = match (&hosts, log.latest_stage(&StageId::Nodes.name())) {
        (Some(hosts), Some((_, r))) if r.status == StageStatus::Succeeded => {
            let connector = Connector::new(&ctx.state, crate::ssh::SshOptions::default()).ok();
            let stage_hosts: Vec<crate::stages::StageHost> = hosts
                .hosts()
                .iter()
                .filter_map(|h| {
                    Some(crate::stages::StageHost {
                        host: h.clone(),
                        transport: connector.as_ref()?.transport(h).ok()?,
                    })
                })
                .collect();
            let checks = crate::plan::stage_live(
                &ctx,
                &[&crate::stages::nodes::Nodes],
                &stage_hosts,
                &log,
                &crate::stages::StageSelection::all(),
            )
            .await
            .checks;
            Some(match checks.get(&StageId::Nodes) {
                Some(crate::stages::Live::Holds) | None => "all running".to_owned(),
                Some(crate::stages::Live::Consumed { why }) => why.clone(),
                Some(crate::stages::Live::Lost { why }) => why.clone(),
            })
        }
        _ => None,
    };

    let stages = StageId::ALL
        .iter()
        .map(|id| match crate::stages::LastRun::of(&log, *id) {
            None => StageShown {
                stage: *id,
                status: "never ran".into(),
                at: None,
                summary: String::new(),
                error: None,
            },
            Some(last) => {
                let at = log
                    .latest_stage(&id.name())
                    .and_then(|(serial, _)| log.get(serial))
                    .map(|e| e.at);
                StageShown {
                    stage: *id,
                    status: match last.status {
                        StageStatus::Running => "interrupted",
                        StageStatus::Succeeded => "succeeded",
                        StageStatus::Failed => "failed",
                    }
                    .into(),
                    at,
                    summary: summary(*id, &last.result),
                    error: last.error,
                }
            }
        })
        .collect();

    let runs = ctx
        .state
        .runs()
        .map(|r| r.iter().map(|d| d.path().to_path_buf()).collect())
        .unwrap_or_default();
    let last_report = crate::stages::LastRun::of(&log, StageId::Report)
        .filter(|l| l.status == StageStatus::Succeeded)
        .and_then(|l| serde_json::from_value::<crate::stages::report::ReportOutput>(l.result).ok())
        .map(|r| ReportShown {
            headline: headline(&r.table),
            run_dir: r.run_dir,
            files: r.files,
        });
    Ok(Shown {
        spec: ctx.spec.name.to_string(),
        owner: ctx.spec.owner.to_string(),
        discovered_at: live.at,
        regions,
        inventory_hosts: listed.len(),
        inventory_missing,
        nodes,
        nodes_live,
        stages,
        runs,
        last_report,
    })
}

/// One line from a stage's recorded outputs.
fn summary(id: StageId, result: &Value) -> String {
    let n = |k: &str| result.get(k).and_then(Value::as_u64).unwrap_or(0);
    let len = |k: &str| result.get(k).and_then(Value::as_array).map_or(0, Vec::len);
    match id {
        StageId::Reach => format!("{}/{} hosts reached", n("reachable"), n("hosts")),
        StageId::Image => format!("{} pulled, {} local", n("pulled"), n("local")),
        StageId::Nodes => format!("{}/{} nodes ready", len("nodes"), n("total")),
        StageId::Topology => format!(
            "{} nodes, {} edges, degree {}..{}",
            n("nodes"),
            n("edges"),
            n("degree_min"),
            n("degree_max")
        ),
        StageId::Transactions => format!(
            "{}/{} generators, {} accounts each",
            n("started"),
            n("nodes"),
            n("accounts_per_node")
        ),
        StageId::Blocks => {
            let synced = result
                .get("synced")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            format!(
                "{}/{} blocks in {:.0}s, {}",
                n("generated"),
                n("planned"),
                result.get("seconds").and_then(Value::as_f64).unwrap_or(0.0),
                if synced { "synced" } else { "not synced" }
            )
        }
        StageId::Collect => format!(
            "{} logs ({} KiB) in {}",
            n("logs"),
            n("bytes") / 1024,
            result.get("run_dir").and_then(Value::as_str).unwrap_or("?")
        ),
        StageId::Report => result
            .get("run_dir")
            .and_then(Value::as_str)
            .map(|d| format!("{d}/report.txt"))
            .unwrap_or_default(),
    }
}

/// The report's first table (the headline), without the rest.
fn headline(table: &str) -> String {
    let mut out = String::new();
    let mut borders = 0;
    for line in table.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with('+') {
            borders += 1;
            if borders == 3 {
                break;
            }
        }
    }
    out
}

/// `Shown` for people.
pub fn render_text(s: &Shown) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "spec `{}` (owner `{}`)", s.spec, s.owner);
    let live_hosts: usize = s.regions.iter().map(|r| r.hosts.len()).sum();
    let _ = writeln!(
        out,
        "\n# hosts: {live_hosts} found by tags at {}, {} in the inventory",
        s.discovered_at.format("%Y-%m-%d %H:%M:%S UTC"),
        s.inventory_hosts
    );
    if s.regions.is_empty() {
        let _ = writeln!(out, "  nothing tagged for this spec exists");
    }
    for r in &s.regions {
        let _ = writeln!(
            out,
            "  {}: {} host{}, {} other resource{}",
            r.region,
            r.hosts.len(),
            if r.hosts.len() == 1 { "" } else { "s" },
            r.resources,
            if r.resources == 1 { "" } else { "s" }
        );
        let mut by_status: BTreeMap<&str, usize> = BTreeMap::new();
        for h in &r.hosts {
            *by_status.entry(h.status.as_str()).or_default() += 1;
        }
        for h in r.hosts.iter().take(20) {
            let _ = writeln!(
                out,
                "    {:<24} {:<18} {:<16} {:<16} {}",
                h.id,
                h.zone,
                h.public_ip.as_deref().unwrap_or("-"),
                h.private_ip.as_deref().unwrap_or("-"),
                h.status
            );
        }
        if r.hosts.len() > 20 {
            let counts: Vec<String> = by_status.iter().map(|(k, v)| format!("{v} {k}")).collect();
            let _ = writeln!(
                out,
                "    ... {} more ({})",
                r.hosts.len() - 20,
                counts.join(", ")
            );
        }
    }
    if !s.inventory_missing.is_empty() {
        let _ = writeln!(
            out,
            "  in the inventory but not found: {} (run `cfxm apply` to replace them)",
            s.inventory_missing.join(", ")
        );
    }
    let _ = writeln!(
        out,
        "\n# nodes: {}{}",
        s.nodes,
        s.nodes_live
            .as_deref()
            .map(|l| format!(", {l}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "\n# stages");
    for st in &s.stages {
        let at = st
            .at
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  {:<13} {:<11} {:<19}  {}",
            st.stage.as_str(),
            st.status,
            at,
            st.summary
        );
        if let Some(e) = &st.error {
            let _ = writeln!(out, "  {:<13} error: {e}", "");
        }
    }
    let _ = writeln!(out, "\n# runs: {}", s.runs.len());
    for r in s.runs.iter().rev().take(5) {
        let _ = writeln!(out, "  {}", r.display());
    }
    match &s.last_report {
        Some(r) => {
            let _ = writeln!(out, "\n# last report: {}/report.txt\n", r.run_dir.display());
            out.push_str(&r.headline);
        }
        None => {
            let _ = writeln!(out, "\n# last report: none yet");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_summaries_read_the_recorded_outputs() {
        let nodes = serde_json::json!({"total": 8, "nodes": [1, 2, 3], "failed": []});
        assert_eq!(summary(StageId::Nodes, &nodes), "3/8 nodes ready");
        let blocks =
            serde_json::json!({"planned": 50, "generated": 50, "seconds": 5.2, "synced": true});
        assert_eq!(
            summary(StageId::Blocks, &blocks),
            "50/50 blocks in 5s, synced"
        );
        assert_eq!(summary(StageId::Report, &Value::Null), "");
    }

    #[test]
    fn the_headline_is_the_first_table() {
        let t = "title\n+--+\n| h |\n+--+\n| a |\n+--+\n\nnext\n+--+\n";
        assert_eq!(headline(t), "title\n+--+\n| h |\n+--+\n| a |\n+--+\n");
    }
}
