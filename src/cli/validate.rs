//! `cfxm validate`: load a spec, print one summary line or every problem in it.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::{Format, SpecArg};
use crate::spec;

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    spec: SpecArg,
    /// `text` for people, `json` for machines (stdout either way).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: ValidateArgs) -> ExitCode {
    match (spec::load(&args.spec.spec), args.format) {
        (Ok(s), Format::Text) => {
            println!("ok: {}", s.summary());
            ExitCode::SUCCESS
        }
        (Ok(s), Format::Json) => {
            let out = json!({
                "ok": true,
                "name": s.name,
                "owner": s.owner,
                "clouds": s.clouds.iter().map(|c| c.kind()).collect::<Vec<_>>(),
                "regions": s.regions(),
                "nodes": s.nodes(),
                "max_hosts": s.max_hosts(),
            });
            println!("{out}");
            ExitCode::SUCCESS
        }
        (Err(errs), Format::Text) => {
            eprint!("{}", super::render_spec_errors(&errs));
            ExitCode::from(1)
        }
        (Err(errs), Format::Json) => {
            let errors: Vec<_> = errs
                .errors
                .iter()
                .map(|e| {
                    let (line, column) = e.location().unzip();
                    json!({
                        "code": miette::Diagnostic::code(e).map(|c| c.to_string()),
                        "message": e.message,
                        "file": e.file(),
                        "line": line,
                        "column": column,
                        "help": e.help,
                    })
                })
                .collect();
            println!(
                "{}",
                json!({ "ok": false, "file": errs.file, "errors": errors })
            );
            ExitCode::from(1)
        }
    }
}
