//! `cfxm apply`: plan (or read a saved plan), show it, ask for a typed `yes` (refused without
//! a terminal unless `--auto-approve`), execute it in parallel, and report. The spec is locked
//! for the whole command; an interrupted previous apply is recovered from the journal first.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::plan::PlanFormat;
use super::progress::{self, SelectArgs, TuningArgs, Ui};
use super::{SpecArg, StateDirArg};
use crate::apply::run::{self, ApplyRequest, PlanRequest};
use crate::apply::{ApplyOptions, DEFAULT_PARALLELISM};
use crate::render::{self, Style};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cfxm apply -f specs/latency-1k.yaml
  cfxm apply --only infra --auto-approve       # cloud resources only, no prompt
  cfxm plan --out plan.json && cfxm apply plan.json")]
pub struct ApplyArgs {
    /// A plan saved by `cfxm plan --out FILE`: execute exactly it (refused if the cloud or the
    /// journal moved since).
    #[arg(value_name = "PLAN")]
    plan: Option<PathBuf>,
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    state: StateDirArg,
    #[command(flatten)]
    select: SelectArgs,
    /// Skip the confirmation (needed without a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Steps run at once; cloud calls are paced per region and API class regardless.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLELISM)]
    parallelism: usize,
    /// How to print the plan before applying it (stdout).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    #[command(flatten)]
    tuning: TuningArgs,
}

pub fn run(args: ApplyArgs) -> ExitCode {
    if args.plan.is_some() && (!args.select.only.is_empty() || !args.select.skip.is_empty()) {
        eprintln!(
            "error: a saved plan carries its own `--only`/`--skip`\n\nhelp: pass them to `cfxm plan --out`, not to `cfxm apply PLAN`"
        );
        return ExitCode::from(1);
    }
    let spec = match super::diagnostics::load_spec(&args.spec.spec) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let runtime = match super::diagnostics::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ui = Ui::new();
    let cancel = progress::cancel_on_ctrl_c(&runtime, ui.clone());
    let request = ApplyRequest {
        plan: PlanRequest {
            spec,
            state_dir: args.state.state_dir(),
            settings: args.tuning.settings(),
            only: args.select.only,
            skip: args.select.skip,
            stages: crate::stages::all().to_vec(),
        },
        saved: args.plan.clone(),
        options: ApplyOptions {
            parallelism: progress::parallelism(args.parallelism),
            hosts: args.tuning.hosts(),
        },
    };
    let on_event = {
        let ui = ui.clone();
        move |e| ui.discover_event(e)
    };
    let prepared = runtime.block_on(run::prepare_apply(request, &on_event, ui.clone(), &cancel));
    ui.discovered();
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            return ExitCode::from(1);
        }
    };
    let r = &prepared.recovery;
    if let Some(holder) = &r.interrupted {
        ui.println(&format!(
            "The previous run ({holder}) was interrupted; recovering from the journal."
        ));
    }
    if let Some(torn) = &r.torn {
        ui.println(&format!("The journal's {torn}."));
    }
    if r.settled > 0 {
        ui.println(&format!(
            "Settled {} cloud call{} the interrupted run left without an outcome (same client tokens: nothing was created twice).",
            r.settled,
            if r.settled == 1 { "" } else { "s" }
        ));
    }
    let style = Style {
        color: args.format == PlanFormat::Text && progress::stdout_color(),
    };
    print!(
        "{}",
        render::plan(&prepared.plan, args.format.render(), style)
    );
    if prepared.plan.is_noop() {
        return ExitCode::SUCCESS;
    }
    match progress::confirm("perform these actions", args.auto_approve) {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("Apply cancelled: nothing was changed.");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    }
    ui.begin(&crate::apply::steps(&prepared.plan));
    let on_round = {
        let ui = ui.clone();
        let format = args.format;
        move |r: run::Round<'_>| {
            ui.discovered();
            ui.println(&round_line(&r));
            // One JSON document on stdout: the round's plan is shown in text only.
            if format != PlanFormat::Json {
                print!("{}", render::plan(r.plan, format.render(), style));
            }
            ui.begin(&crate::apply::steps(r.plan));
        }
    };
    let result = runtime.block_on(prepared.execute(ui.clone(), cancel, &on_event, &on_round));
    let code = match result {
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            ExitCode::from(1)
        }
        Ok(result) => {
            eprint!("{}", progress::failures(&result));
            print!("{}", progress::report(&result, "Apply"));
            if let Some(latency) = &result.latency {
                print!("{}", progress::latency(latency));
            }
            if result.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    };
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    code
}

/// `2 hosts did not answer; replacing them (round 1 of 2): i-a (r1), i-b (r2)`.
fn round_line(r: &run::Round<'_>) -> String {
    let n = r.unreachable.len();
    format!(
        "{n} host{} did not answer; replacing {} (round {} of {}): {}",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "them" },
        r.number,
        r.of,
        run::host_names(r.unreachable)
    )
}
