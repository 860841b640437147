//! `cfxm schema`: print the spec's JSON Schema (or, with `--report`, that of `report.json`).

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of `report.json` (written by `cfxm report`) instead of the spec's.
    #[arg(long)]
    report: bool,
}

pub fn run(args: SchemaArgs) -> ExitCode {
    if args.report {
        print!("{}", crate::analyze::json_schema_text());
    } else {
        print!("{}", crate::spec::json_schema_text());
    }
    ExitCode::SUCCESS
}
