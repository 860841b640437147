//! Rendering plans for people and machines (DESIGN §4): computing a plan and showing it are
//! separate, so output can change without touching the diff.
//!
//! - [`Format::Text`]: Terraform's grammar (`+` create, `~` update, `-/+` replace, `-`
//!   destroy, `>` a stage that runs), a reason under every replace and destroy, attribute
//!   changes as unified diffs (`similar`), and `Plan: A to add, C to change, D to destroy.`
//!   Grouped so a 10,000-node plan fits a screen: one block per region, subnets of a region on
//!   one line, hosts as counts per region and type, and every host to destroy listed.
//! - [`Format::Markdown`]: a PR comment: the summary line, a table per region, the text plan
//!   folded in `<details>`.
//! - [`Format::Json`]: the plan itself, as `plan --out` saves it (`schemas/plan.schema.json`).

mod markdown;
mod text;

use crate::plan::Plan;

/// How to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// Terminal styling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// ANSI colours (green adds, yellow changes, red destroys).
    pub color: bool,
}

/// Renders `plan` as `format`.
pub fn plan(plan: &Plan, format: Format, style: Style) -> String {
    match format {
        Format::Text => text::plan(plan, style),
        Format::Markdown => markdown::plan(plan),
        Format::Json => serde_json::to_string_pretty(plan).expect("plans serialize") + "\n",
    }
}

/// Several plans (one per spec, for `destroy --owner`) one after the other.
pub fn plans(plans: &[Plan], format: Format, style: Style) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(plans).expect("plans serialize") + "\n",
        _ => plans
            .iter()
            .map(|p| plan(p, format, style))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// `10000` → `10,000`.
pub(crate) fn n(v: u64) -> String {
    crate::spec::thousands(v)
}
