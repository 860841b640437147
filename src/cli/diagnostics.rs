//! Drawing miette diagnostics on stderr: colour when the terminal wants it (`NO_COLOR` wins),
//! width from `COLUMNS` or the terminal, so snapshot tests can pin both.

use std::io::IsTerminal;

use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

use crate::spec::SpecErrors;

pub(crate) fn color_enabled() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(100)
}

/// Renders one diagnostic as text.
pub fn render_diagnostic(diag: &dyn Diagnostic) -> String {
    let theme = if color_enabled() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(width());
    let mut out = String::new();
    if handler.render_report(&mut out, diag).is_err() {
        out = format!("error: {diag}\n");
    }
    out
}

/// Renders every problem of a spec, then one summary line.
pub fn render_spec_errors(errs: &SpecErrors) -> String {
    let mut out = String::new();
    for e in &errs.errors {
        out.push_str(&render_diagnostic(e));
        out.push('\n');
    }
    out.push_str(&format!("error: {errs}\n"));
    out
}

/// The spec at `path`, or its diagnostics printed on stderr and exit code 1 (what every
/// command that reads a spec does with a bad one).
pub fn load_spec(path: &std::path::Path) -> Result<crate::spec::Spec, std::process::ExitCode> {
    crate::spec::load(path).map_err(|errs| {
        eprint!("{}", render_spec_errors(&errs));
        std::process::ExitCode::from(1)
    })
}

/// The commands' tokio runtime, or the reason it could not start on stderr and exit code 1.
pub fn runtime() -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    super::progress::runtime().map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::from(1)
    })
}
