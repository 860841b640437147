//! `cfxm plan`: discover what the spec's tags mark in every region, diff it against the spec,
//! and show the plan (text, markdown or JSON); `--out` saves it for `cfxm apply FILE`.
//! Exit codes: 0 (or, with `--detailed-exitcode`, 0 no changes / 2 changes), 1 error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::progress::{self, SelectArgs, TuningArgs, Ui};
use super::{SpecArg, StateDirArg};
use crate::apply::run::{self, PlanRequest};
use crate::render::{self, Style};

/// How a plan is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Terraform's grammar, grouped per region.
    Text,
    /// A pull-request comment: summary table, details folded.
    Markdown,
    /// The plan as data (`schemas/plan.schema.json`).
    Json,
}

impl PlanFormat {
    pub fn render(self) -> render::Format {
        match self {
            PlanFormat::Text => render::Format::Text,
            PlanFormat::Markdown => render::Format::Markdown,
            PlanFormat::Json => render::Format::Json,
        }
    }
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cfxm plan -f specs/latency-1k.yaml
  cfxm plan --only infra --detailed-exitcode     # CI: 0 no changes, 2 changes, 1 error
  cfxm plan --format markdown > plan.md          # a PR comment
  cfxm plan --out plan.json && cfxm apply plan.json")]
pub struct PlanArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    state: StateDirArg,
    #[command(flatten)]
    select: SelectArgs,
    /// How to print the plan (stdout).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Save the plan (JSON) to apply it later with `cfxm apply FILE`; refused there if the
    /// cloud or the journal moved meanwhile.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there is nothing to change, 2 when there is, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    #[command(flatten)]
    tuning: TuningArgs,
}

pub fn run(args: PlanArgs) -> ExitCode {
    let spec = match super::diagnostics::load_spec(&args.spec.spec) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::diagnostics::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ui = Ui::new();
    let request = PlanRequest {
        spec,
        state_dir: args.state.state_dir(),
        settings: args.tuning.settings(),
        only: args.select.only,
        skip: args.select.skip,
        stages: crate::stages::all().to_vec(),
    };
    let on_event = {
        let ui = ui.clone();
        move |e| ui.discover_event(e)
    };
    let result = runtime.block_on(run::plan(request, &on_event));
    ui.discovered();
    let plan = match result {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            return ExitCode::from(1);
        }
    };
    if let Some(path) = &args.out
        && let Err(e) = crate::plan::saved::write(path, &plan)
    {
        eprint!("{}", super::render_diagnostic(&e));
        return ExitCode::from(1);
    }
    let style = Style {
        color: args.format == PlanFormat::Text && progress::stdout_color(),
    };
    print!("{}", render::plan(&plan, args.format.render(), style));
    if let Some(path) = &args.out {
        eprintln!(
            "Saved the plan to `{}`; apply exactly it with `cfxm apply {}`.",
            path.display(),
            path.display()
        );
    }
    if args.detailed_exitcode && !plan.is_noop() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
