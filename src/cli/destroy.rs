//! `cfxm destroy`: everything tagged for a spec (or, with `--owner`, for every spec of an
//! owner) in every region the account has, listed first, confirmed, deleted in reverse
//! dependency order (instances, waited until gone; subnets; security groups; networks; key
//! pairs), then discovered again: anything still tagged is listed and the command fails.

use std::process::ExitCode;

use clap::Args;

use super::plan::PlanFormat;
use super::progress::{self, TuningArgs, Ui};
use super::{SpecArg, StateDirArg};
use crate::apply::run::{self, DestroyRequest, DestroyTarget};
use crate::apply::{ApplyOptions, DEFAULT_PARALLELISM};
use crate::render::{self, Style};
use crate::spec::{self, CloudKind, Owner};

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  cfxm destroy -f specs/latency-1k.yaml --dry-run     # list what would go
  cfxm destroy -f specs/latency-1k.yaml --auto-approve
  cfxm destroy --owner alice                          # every spec of alice, every region
  cfxm destroy --owner alice --cloud aws              # the same on AWS")]
pub struct DestroyArgs {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    state: StateDirArg,
    /// Destroy every spec of this owner in every region (no spec file needed). Only resources
    /// tagged exactly `user=NAME` with a `cfxm-spec` tag are touched: `alice` never matches
    /// `alice2`.
    #[arg(long, value_name = "NAME")]
    owner: Option<String>,
    /// With `--owner`: the cloud to search, every region of it (credentials from its standard
    /// variables).
    #[arg(long, value_enum, default_value_t = OwnerCloud::Aliyun, requires = "owner")]
    cloud: OwnerCloud,
    /// List what would be destroyed, and stop.
    #[arg(long)]
    dry_run: bool,
    /// Skip the confirmation (needed without a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Steps run at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PARALLELISM)]
    parallelism: usize,
    /// How to print the listing (stdout).
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    #[command(flatten)]
    tuning: TuningArgs,
}

/// The clouds `destroy --owner` can search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OwnerCloud {
    Aliyun,
    Aws,
}

pub fn run(args: DestroyArgs) -> ExitCode {
    let target = match &args.owner {
        Some(owner) => {
            let re = regex::Regex::new(crate::spec::model::NAME_PATTERN).expect("a valid pattern");
            if !re.is_match(owner) {
                eprintln!(
                    "error: `{owner}` is not an owner name\n\nhelp: owners are lowercase letters, digits and `-`, starting with a letter"
                );
                return ExitCode::from(1);
            }
            DestroyTarget::Owner {
                owner: Owner::new(owner),
                cloud: match args.cloud {
                    OwnerCloud::Aliyun => CloudKind::Aliyun,
                    OwnerCloud::Aws => CloudKind::Aws,
                },
            }
        }
        None => match spec::load(&args.spec.spec) {
            Ok(s) => DestroyTarget::Spec(Box::new(s)),
            Err(errs) => {
                eprint!("{}", super::render_spec_errors(&errs));
                return ExitCode::from(1);
            }
        },
    };
    let runtime = match super::diagnostics::runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let ui = Ui::new();
    let cancel = progress::cancel_on_ctrl_c(&runtime, ui.clone());
    let request = DestroyRequest {
        target,
        state_dir: args.state.state_dir(),
        settings: args.tuning.settings(),
        options: ApplyOptions {
            parallelism: progress::parallelism(args.parallelism),
            hosts: args.tuning.hosts(),
        },
    };
    let on_event = {
        let ui = ui.clone();
        move |e| ui.discover_event(e)
    };
    let prepared = runtime.block_on(run::prepare_destroy(request, &on_event));
    ui.discovered();
    let prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            return ExitCode::from(1);
        }
    };
    let style = Style {
        color: args.format == PlanFormat::Text && progress::stdout_color(),
    };
    let plans: Vec<crate::plan::Plan> = prepared.units.iter().map(|u| (*u.plan).clone()).collect();
    if plans.is_empty() {
        println!(
            "No changes. Nothing tagged for owner `{}` exists.",
            args.owner.as_deref().unwrap_or("")
        );
        return ExitCode::SUCCESS;
    }
    print!("{}", render::plans(&plans, args.format.render(), style));
    if args.dry_run {
        return ExitCode::SUCCESS;
    }
    // With nothing tagged, there is nothing to confirm; the check below still runs (and
    // clears a local cloud's leftover slots).
    if !prepared.is_empty() {
        match progress::confirm("destroy all of the above", args.auto_approve) {
            Ok(true) => {}
            Ok(false) => {
                eprintln!("Destroy cancelled: nothing was changed.");
                return ExitCode::from(1);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let mut ok = true;
    for unit in prepared.units.iter().filter(|u| !u.plan.is_noop()) {
        ui.begin(&crate::apply::steps(&unit.plan));
        match runtime.block_on(prepared.execute(unit, ui.clone(), cancel.clone())) {
            Err(e) => {
                eprint!("{}", super::render_diagnostic(&e));
                ok = false;
            }
            Ok(result) => {
                eprint!("{}", progress::failures(&result));
                print!("{}", progress::report(&result, "Destroy"));
                ok &= result.is_success();
            }
        }
    }
    // Whatever happened, look again: the only proof nothing is left.
    match runtime.block_on(prepared.verify(&on_event)) {
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            ok = false;
        }
        Ok(Err(left)) => {
            let (resources, instances) = left.live.count();
            eprintln!(
                "error: {resources} resource(s) and {instances} host(s) are still tagged for this destroy:"
            );
            for (key, region) in &left.live.regions {
                for r in &region.resources {
                    eprintln!("  {key}: {:?} {}", r.kind, r.id);
                }
                for i in &region.instances {
                    eprintln!("  {key}: instance {} ({})", i.id, i.status);
                }
            }
            eprintln!("\nhelp: run `cfxm destroy` again; it retries what is left");
            ok = false;
        }
        Ok(Ok(())) => {
            println!("Nothing tagged is left.");
        }
    }
    ui.discovered();
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
