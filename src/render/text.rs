//! The text plan: Terraform's grammar, one block per region, hosts as counts.
//!
//! ```text
//! # aliyun/ap-southeast-1
//!     + vpc                conflux-massive-test-alice-lat 10.0.0.0/16
//!     + vswitch ×3         ap-southeast-1a 10.0.0.0/20, ap-southeast-1b 10.0.16.0/20, ...
//!     + security_group     2 rules: ssh from 203.0.113.7/32; node ports from 10.0.0.0/16
//!     + key_pair           conflux-massive-test-alice-lat (fingerprint 1a2b3c4d5e6f)
//!     + hosts              600 nodes: 600 × ecs.g8i.2xlarge (then ecs.g7.2xlarge) over 3 zones
//!
//! Plan: 605 to add, 0 to change, 0 to destroy.
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Style, n};
use crate::plan::{Action, Change, ChangeKind, HostsChange, Mode, Plan};
use crate::provider::resource::Attrs;

struct Paint {
    color: bool,
}

impl Paint {
    fn action(&self, a: Action) -> String {
        let sym = format!("{:>3}", a.symbol());
        if !self.color {
            return sym;
        }
        let code = match a {
            Action::Create => "32",
            Action::Update => "33",
            Action::Replace | Action::Delete => "31",
            Action::Run => "36",
            Action::Read | Action::NoOp => return sym,
        };
        format!("\x1b[{code}m{sym}\x1b[0m")
    }

    fn bold(&self, s: &str) -> String {
        if self.color {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

/// The address without `<cloud>/<region>/`.
fn label(c: &Change) -> String {
    let a = c.address.as_str();
    match (&c.cloud, &c.region) {
        (Some(cloud), Some(region)) => a
            .strip_prefix(&format!("{cloud}/{region}/"))
            .unwrap_or(a)
            .to_owned(),
        _ => a.to_owned(),
    }
}

fn group_key(c: &Change) -> String {
    match (&c.cloud, &c.region, c.kind) {
        (_, _, ChangeKind::Stage) => "stages".into(),
        (Some(cloud), Some(region), _) => format!("{cloud}/{region}"),
        (Some(cloud), None, _) => cloud.to_string(),
        _ => "other".into(),
    }
}

pub(super) fn plan(plan: &Plan, style: Style) -> String {
    let paint = Paint { color: style.color };
    let mut out = String::new();
    let header = match plan.mode {
        Mode::Apply => format!(
            "cfxm plan for spec `{}` (owner `{}`){}",
            plan.spec,
            plan.owner,
            if plan.selection.is_empty() {
                String::new()
            } else {
                format!(", {}", plan.selection)
            }
        ),
        Mode::Destroy => format!(
            "cfxm will destroy everything tagged for spec `{}` of owner `{}`",
            plan.spec, plan.owner
        ),
    };
    let _ = writeln!(out, "{}\n", paint.bold(&header));

    // Blocks in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, Vec<&Change>> = BTreeMap::new();
    for c in &plan.changes {
        let k = group_key(c);
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(c);
    }
    let width = plan
        .changes
        .iter()
        .filter(|c| c.kind != ChangeKind::Stage)
        .map(|c| label(c).len())
        .max()
        .unwrap_or(8)
        .clamp(8, 28);
    let stage_width = 12;
    for key in &order {
        let changes = &groups[key];
        if key == "stages" {
            stages(&mut out, &paint, changes, stage_width);
        } else {
            region(&mut out, &paint, key, changes, width);
        }
    }

    for w in &plan.warnings {
        let _ = writeln!(out, "Warning: {w}");
    }
    if !plan.warnings.is_empty() {
        out.push('\n');
    }
    let excluded = plan.changes.iter().filter(|c| c.excluded.is_some()).count();
    let s = plan.summary;
    if plan.is_noop() {
        let _ = write!(
            out,
            "No changes. {}",
            match plan.mode {
                Mode::Apply => "The cloud matches the spec.",
                Mode::Destroy => "Nothing tagged for this spec exists.",
            }
        );
        if excluded > 0 {
            let _ = write!(
                out,
                " ({excluded} change{} left out by {})",
                if excluded == 1 { "" } else { "s" },
                plan.selection
            );
        }
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "{}",
            paint.bold(&format!(
                "Plan: {} to add, {} to change, {} to destroy.",
                n(s.add),
                n(s.change),
                n(s.destroy)
            ))
        );
        let has_stages = plan.changes.iter().any(|c| c.kind == ChangeKind::Stage);
        if has_stages {
            let _ = writeln!(out, "Stages: {} to run.", s.run);
        }
        if excluded > 0 {
            let _ = writeln!(
                out,
                "{excluded} change{} left out by {}.",
                if excluded == 1 { "" } else { "s" },
                plan.selection
            );
        }
    }
    out
}

fn region(out: &mut String, paint: &Paint, key: &str, changes: &[&Change], width: usize) {
    let shown: Vec<&Change> = changes
        .iter()
        .copied()
        .filter(|c| c.action.changes_something())
        .collect();
    let excluded = changes.iter().filter(|c| c.excluded.is_some()).count();
    let unchanged = changes
        .iter()
        .filter(|c| {
            c.action == Action::NoOp && c.excluded.is_none() && c.kind != ChangeKind::Backfill
        })
        .count();
    let kept_hosts: usize = changes
        .iter()
        .filter_map(|c| c.hosts.as_ref())
        .map(|h| h.kept.len())
        .sum();
    let mut head = format!("# {key}");
    let mut notes = Vec::new();
    if unchanged > 0 {
        notes.push(format!("{unchanged} unchanged"));
    }
    if kept_hosts > 0 {
        notes.push(format!(
            "{} host{} kept",
            n(kept_hosts as u64),
            if kept_hosts == 1 { "" } else { "s" }
        ));
    }
    if excluded > 0 {
        let flag = changes
            .iter()
            .find_map(|c| c.excluded.as_ref())
            .map(|e| e.flag.clone())
            .unwrap_or_default();
        notes.push(format!("{excluded} left out by {flag}"));
    }
    if shown.is_empty() && !notes.is_empty() {
        head.push_str(&format!(": no changes ({})", notes.join(", ")));
        let _ = writeln!(out, "{head}\n");
        return;
    }
    if !notes.is_empty() {
        head.push_str(&format!(" ({})", notes.join(", ")));
    }
    if shown.is_empty() {
        // A cloud-level step (backfill) with nothing to show.
        let notes: Vec<&str> = changes.iter().filter_map(|c| c.reason.as_deref()).collect();
        if !notes.is_empty() {
            let _ = writeln!(out, "# {key}: {}\n", notes.join("; "));
        }
        return;
    }
    let _ = writeln!(out, "{head}");
    let mut i = 0;
    while i < shown.len() {
        let c = shown[i];
        // Subnets of one region with the same action and reason: one line.
        if c.kind == ChangeKind::Subnet && c.action != Action::Replace {
            let mut j = i;
            while j < shown.len()
                && shown[j].kind == ChangeKind::Subnet
                && shown[j].action == c.action
                && shown[j].reason == c.reason
            {
                j += 1;
            }
            if j - i > 1 {
                let group = &shown[i..j];
                let noun = label(c).split('/').next().unwrap_or("subnet").to_owned();
                let detail: Vec<String> = group
                    .iter()
                    .filter_map(|s| {
                        let attrs = s.after.as_ref().or(s.before.as_ref())?;
                        match attrs {
                            Attrs::Subnet { zone, cidr, .. } => Some(format!("{zone} {cidr}")),
                            _ => None,
                        }
                    })
                    .collect();
                let _ = writeln!(
                    out,
                    " {} {:<width$}  {}",
                    paint.action(c.action),
                    format!("{noun} ×{}", j - i),
                    detail.join(", ")
                );
                if let Some(r) = &c.reason
                    && c.action == Action::Delete
                {
                    let _ = writeln!(out, "{:>8}# {r}", "");
                }
                i = j;
                continue;
            }
        }
        line(out, paint, c, width);
        i += 1;
    }
    out.push('\n');
}

fn line(out: &mut String, paint: &Paint, c: &Change, width: usize) {
    let attrs = c.after.as_ref().or(c.before.as_ref());
    let detail = match (c.kind, attrs) {
        (ChangeKind::Hosts, _) => hosts_detail(c),
        (_, Some(a)) => attrs_detail(c, a),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        " {} {:<width$}  {}",
        paint.action(c.action),
        label(c),
        detail
    );
    if matches!(c.action, Action::Replace | Action::Delete | Action::Update)
        && c.kind != ChangeKind::Hosts
        && let Some(r) = &c.reason
    {
        let _ = writeln!(out, "{:>8}# {r}", "");
    }
    if c.action == Action::Update
        && matches!(c.kind, ChangeKind::SecurityGroup | ChangeKind::Peers)
        && let (Some(b), Some(a)) = (&c.before, &c.after)
    {
        diff(out, b, a);
    }
    if let Some(h) = &c.hosts {
        if c.action != Action::Create
            && let Some(r) = &c.reason
            && c.action != Action::Delete
        {
            let _ = writeln!(out, "{:>8}# {r}", "");
        }
        removals(out, h);
    }
}

/// A unified diff of the attribute lines (`similar`), indented under the change.
fn diff(out: &mut String, before: &Attrs, after: &Attrs) {
    let b = before.lines().join("\n") + "\n";
    let a = after.lines().join("\n") + "\n";
    let text = similar::TextDiff::from_lines(&b, &a)
        .unified_diff()
        .context_radius(1)
        .header("live", "spec")
        .to_string();
    for l in text.lines() {
        let _ = writeln!(out, "{:>8}{l}", "");
    }
}

fn removals(out: &mut String, h: &HostsChange) {
    for r in &h.destroy {
        let _ = writeln!(
            out,
            "{:>8}- {}  {}  {}  {}  # {}",
            "",
            r.host.id,
            r.host.instance_type,
            r.host.zone,
            r.host.public_ip.as_deref().unwrap_or("-"),
            r.reason
        );
    }
}

fn attrs_detail(c: &Change, a: &Attrs) -> String {
    match a {
        Attrs::Network { name, cidr } => match (c.action, &c.before) {
            (Action::Replace, Some(Attrs::Network { cidr: old, .. })) => {
                format!("{name} {old} → {cidr}")
            }
            _ => format!("{name} {cidr}"),
        },
        Attrs::Gateway { name } => name.clone(),
        Attrs::Subnet { zone, cidr, .. } => match (c.action, &c.before) {
            (Action::Replace, Some(Attrs::Subnet { cidr: old, .. })) => {
                format!("{zone} {old} → {cidr}")
            }
            _ => format!("{zone} {cidr}"),
        },
        Attrs::SecurityGroup { rules, .. } => {
            let mut ssh = Vec::new();
            let mut nodes = Vec::new();
            for r in rules {
                if r.from_port == 22 && r.to_port == 22 {
                    ssh.push(r.source.clone());
                } else {
                    nodes.push(r.source.clone());
                }
            }
            format!(
                "{} rule{}: ssh from {}; node ports from {}",
                rules.len(),
                if rules.len() == 1 { "" } else { "s" },
                if ssh.is_empty() {
                    "nowhere".into()
                } else {
                    ssh.join(", ")
                },
                if nodes.is_empty() {
                    "nowhere".into()
                } else {
                    nodes.join(", ")
                }
            )
        }
        Attrs::Peers { rules: None } => {
            "node ports for the experiment's other regions (known after the hosts are applied)"
                .into()
        }
        Attrs::Peers { rules: Some(r) } => format!(
            "node ports for the experiment's other regions: {} address block{}",
            r.len(),
            if r.len() == 1 { "" } else { "s" }
        ),
        Attrs::KeyPair {
            name, fingerprint, ..
        } => {
            let fp: String = fingerprint.chars().take(12).collect();
            format!("{name} (fingerprint {fp})")
        }
        Attrs::Image { name } => match &c.live_id {
            Some(id) => format!("{name} ({id})"),
            None => name.clone(),
        },
        Attrs::Hosts(_) => String::new(),
    }
}

fn hosts_detail(c: &Change) -> String {
    let Some(h) = &c.hosts else {
        return String::new();
    };
    let want = match &c.after {
        Some(Attrs::Hosts(w)) => Some(w),
        _ => None,
    };
    let types = want
        .map(|w| {
            let mut t = w.types.iter();
            let first = t.next().map(|t| t.name.to_string()).unwrap_or_default();
            let rest: Vec<String> = t.map(|t| t.name.to_string()).collect();
            if rest.is_empty() {
                first
            } else {
                format!("{first} (then {})", rest.join(", "))
            }
        })
        .unwrap_or_default();
    let zones = want.map_or(0, |w| w.zones.len());
    let mut kept_by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for k in &h.kept {
        *kept_by_type.entry(k.instance_type.as_str()).or_default() += 1;
    }
    let kept = kept_by_type
        .iter()
        .map(|(t, c)| format!("{} × {t}", n(*c as u64)))
        .collect::<Vec<_>>()
        .join(", ");
    let backfill = if h.backfill_nodes > 0 {
        format!(
            " (includes {} node{} backfilled from regions out of stock)",
            h.backfill_nodes,
            if h.backfill_nodes == 1 { "" } else { "s" }
        )
    } else if h.backfill_nodes < 0 {
        format!(
            " ({} node{} backfilled to other regions)",
            -h.backfill_nodes,
            if h.backfill_nodes == -1 { "" } else { "s" }
        )
    } else {
        String::new()
    };
    match c.action {
        Action::Create => format!(
            "{} nodes: {} × {types} over {zones} zone{}{backfill}",
            n(u64::from(h.wanted_nodes)),
            n(h.add_hosts),
            if zones == 1 { "" } else { "s" }
        ),
        Action::Delete => format!(
            "{} host{} to destroy",
            n(h.destroy.len() as u64),
            if h.destroy.len() == 1 { "" } else { "s" }
        ),
        Action::NoOp => format!("{} nodes on {kept}", n(u64::from(h.kept_nodes))),
        _ => {
            let mut parts = vec![format!("{} nodes", n(u64::from(h.wanted_nodes)))];
            if !h.kept.is_empty() {
                parts.push(format!("kept {kept}"));
            }
            if h.add_hosts > 0 {
                parts.push(format!("+{} × {types}", n(h.add_hosts)));
            }
            if !h.destroy.is_empty() {
                parts.push(format!("-{} destroyed", n(h.destroy.len() as u64)));
            }
            parts.join("; ") + &backfill
        }
    }
}

fn stages(out: &mut String, paint: &Paint, changes: &[&Change], width: usize) {
    let _ = writeln!(out, "# stages");
    for c in changes {
        let name = c
            .address
            .as_str()
            .strip_prefix("stage/")
            .unwrap_or(c.address.as_str());
        let detail = match (&c.stage, &c.excluded) {
            (Some(s), Some(e)) => format!(
                "left out by {} (would run: {})",
                e.flag,
                s.reasons.join("; ")
            ),
            (Some(s), None) if c.action == Action::Run => s.reasons.join("; "),
            (Some(s), None) => s
                .summary
                .split_once(": ")
                .map(|(_, rest)| rest.to_owned())
                .unwrap_or_default(),
            (None, _) => String::new(),
        };
        let _ = writeln!(
            out,
            " {} {:<width$}  {detail}",
            paint.action(c.action),
            name
        );
        if let Some(diff) = c.stage.as_ref().and_then(|s| s.diff.as_deref()) {
            for line in diff.lines() {
                let _ = writeln!(out, "       {line}");
            }
        }
    }
    out.push('\n');
}
