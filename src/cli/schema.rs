//! `cfxm schema`: print the spec's JSON Schema.

use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct SchemaArgs {}

pub fn run(_args: SchemaArgs) -> ExitCode {
    print!("{}", crate::spec::json_schema_text());
    ExitCode::SUCCESS
}
