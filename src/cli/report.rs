//! `cfxm report RUN_DIR`: analyse a finished run offline, print the tables, write the report files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::analyze::{self, AnalyzeOptions, WriteOptions};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory: it holds `logs/<host>-<i>/conflux.log` (plain, `.zst` or `.gz`).
    #[arg(value_name = "RUN_DIR")]
    run_dir: PathBuf,
    /// What to print on stdout: the text tables, `report.json`, or the Markdown summary.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    format: ReportFormat,
    /// Percentiles of the headline table, e.g. `50,90,99,99.9` (default: the spec's
    /// `report.percentiles` with `--spec`, else the original's 10,30,50,80,90,95,99,99.9).
    #[arg(long, value_delimiter = ',', value_name = "P,...")]
    percentiles: Vec<f64>,
    /// Take the percentiles from this spec's `report.percentiles`.
    #[arg(short = 'f', long = "spec", value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Keep only the earliest N blocks by header timestamp (the original's `-n`).
    #[arg(short = 'n', long, value_name = "N")]
    max_blocks: Option<usize>,
    /// Threads that read logs (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Do not draw `plots/`.
    #[arg(long)]
    no_plots: bool,
    /// Print only; write nothing into RUN_DIR.
    #[arg(long)]
    no_write: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    Text,
    Json,
    Markdown,
}

pub fn run(args: ReportArgs) -> ExitCode {
    let percentiles = if !args.percentiles.is_empty() {
        args.percentiles.clone()
    } else if let Some(spec) = &args.spec {
        match crate::spec::load(spec) {
            Ok(s) => s.report.percentiles.clone(),
            Err(errs) => {
                eprint!("{}", super::render_spec_errors(&errs));
                return ExitCode::from(1);
            }
        }
    } else {
        analyze::ORIGINAL_PERCENTILES.to_vec()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reading logs {pos}/{len} [{elapsed_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let opts = AnalyzeOptions {
        percentiles,
        threads: args.threads,
        max_blocks: args.max_blocks,
        progress: Some(std::sync::Arc::new(move |p: analyze::Progress| {
            progress_bar.set_length(p.files_total as u64);
            progress_bar.set_position(p.files_done as u64);
            progress_bar.set_message(format!(
                "{:.0} of {:.0} MB on disk",
                p.disk_bytes_done as f64 / 1e6,
                p.disk_bytes_total as f64 / 1e6
            ));
        })),
        ..AnalyzeOptions::default()
    };
    let report = analyze::analyze_run(&args.run_dir, &opts);
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprint!("{}", super::render_diagnostic(&e));
            return ExitCode::from(1);
        }
    };
    if !args.no_write {
        let written = analyze::write_report(
            &args.run_dir,
            &report,
            &WriteOptions {
                plots: !args.no_plots,
            },
        );
        match written {
            Ok(paths) => eprintln!(
                "wrote {} files to {} (report.txt, report.json, report.md{})",
                paths.len(),
                args.run_dir.display(),
                if args.no_plots { "" } else { ", plots/" }
            ),
            Err(e) => {
                eprint!("{}", super::render_diagnostic(&e));
                return ExitCode::from(1);
            }
        }
    }
    let out = match args.format {
        ReportFormat::Text => analyze::render_text(&report),
        ReportFormat::Json => analyze::render_json(&report),
        ReportFormat::Markdown => analyze::render_markdown(&report),
    };
    print!("{out}");
    ExitCode::SUCCESS
}
