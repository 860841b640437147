//! The plan as a pull-request comment: a title, the summary line, one table row per region
//! (and one for the stages), warnings as quotes, and the whole text plan folded in a
//! `<details>` block as a `diff` code block (so `+`/`-` lines are coloured by the forge).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Style, n};
use crate::plan::{Action, Change, ChangeKind, Mode, Plan, Summary};

pub(super) fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let verb = match plan.mode {
        Mode::Apply => "plan",
        Mode::Destroy => "destroy plan",
    };
    let _ = writeln!(
        out,
        "### cfxm {verb}: `{}` (owner `{}`)\n",
        plan.spec, plan.owner
    );
    let s = plan.summary;
    if plan.is_noop() {
        let _ = writeln!(out, "**No changes.** The cloud matches the spec.\n");
    } else {
        let _ = write!(
            out,
            "**Plan: {} to add, {} to change, {} to destroy.**",
            n(s.add),
            n(s.change),
            n(s.destroy)
        );
        if plan.changes.iter().any(|c| c.kind == ChangeKind::Stage) {
            let _ = write!(out, " Stages: {} to run.", s.run);
        }
        out.push_str("\n\n");
    }
    if !plan.selection.is_empty() {
        let _ = writeln!(out, "Selection: `{}`\n", plan.selection);
    }
    for w in &plan.warnings {
        let _ = writeln!(out, "> **Warning:** {w}\n");
    }

    // One row per region (cloud resources and hosts), then the stages.
    let mut rows: BTreeMap<String, (Summary, u64, u64)> = BTreeMap::new();
    let mut order = Vec::new();
    for c in plan.changes.iter().filter(|c| c.kind != ChangeKind::Stage) {
        let key = match (&c.cloud, &c.region) {
            (Some(cloud), Some(region)) => format!("{cloud}/{region}"),
            // Cloud-level steps (backfill) change nothing by themselves.
            _ => continue,
        };
        if !rows.contains_key(&key) {
            order.push(key.clone());
        }
        let row = rows.entry(key).or_default();
        let one = Summary::of(std::slice::from_ref(c));
        row.0.add += one.add;
        row.0.change += one.change;
        row.0.destroy += one.destroy;
        if let Some(h) = &c.hosts {
            row.1 += h.kept.len() as u64 + h.destroy.len() as u64;
            row.2 += h.kept.len() as u64
                + if c.action == Action::NoOp && c.excluded.is_none() {
                    0
                } else {
                    h.add_hosts
                };
        }
    }
    if !order.is_empty() {
        out.push_str("| region | add | change | destroy | hosts now → after |\n");
        out.push_str("| --- | ---: | ---: | ---: | --- |\n");
        for key in &order {
            let (s, before, after) = rows[key];
            let _ = writeln!(
                out,
                "| `{key}` | {} | {} | {} | {} → {} |",
                n(s.add),
                n(s.change),
                n(s.destroy),
                n(before),
                n(after)
            );
        }
        out.push('\n');
    }
    let stages: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.kind == ChangeKind::Stage)
        .collect();
    if !stages.is_empty() {
        out.push_str("| stage | runs | why |\n| --- | --- | --- |\n");
        for c in stages {
            let name = c.address.as_str().strip_prefix("stage/").unwrap_or("");
            let (runs, why) = match (&c.excluded, &c.stage) {
                (Some(e), Some(s)) => (format!("no ({})", e.flag), s.reasons.join("; ")),
                (None, Some(s)) if c.action == Action::Run => ("yes".into(), s.reasons.join("; ")),
                (None, Some(_)) => ("no".into(), "up to date".into()),
                _ => ("no".into(), String::new()),
            };
            let _ = writeln!(out, "| `{name}` | {runs} | {} |", why.replace('|', "\\|"));
        }
        out.push('\n');
    }
    // Change lines start at column 0 so the forge colours `+` and `-`.
    let text: String = super::text::plan(plan, Style { color: false })
        .lines()
        .map(|l| {
            let t = l.trim_start();
            if t.starts_with(['+', '-', '~']) {
                format!("{t}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    let _ = write!(
        out,
        "<details><summary>Details</summary>\n\n```diff\n{}```\n\n</details>\n",
        text
    );
    out
}
