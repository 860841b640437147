//! `cfxm schema`: print the spec's JSON Schema (or, with `--report`, that of `report.json`;
//! with `--plan`, that of a saved plan).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of `report.json` (written by `cfxm report`) instead of the spec's.
    #[arg(long, conflicts_with = "plan")]
    report: bool,
    /// Print the schema of a saved plan (`cfxm plan --out`, `--format json`) instead.
    #[arg(long)]
    plan: bool,
}

pub fn run(args: SchemaArgs) -> ExitCode {
    if args.plan {
        print!("{}", crate::plan::json_schema_text());
    } else if args.report {
        print!("{}", crate::analyze::json_schema_text());
    } else {
        print!("{}", crate::spec::json_schema_text());
    }
    ExitCode::SUCCESS
}
