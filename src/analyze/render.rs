//! The report as text (stdout and `report.txt`) and as Markdown (for a PR or an issue).
//!
//! The original's table is drawn the way prettytable-rs draws it with the format stat_latency_rs
//! uses (conflux-node.md §3.4): `|` borders and column separators, one space of padding, cells
//! left-aligned, and `+---+` rules only above the title, under it and at the bottom. Blank rows are
//! rows of empty cells. Numbers: `%.2f` rows print two decimals, block-scalar and gap rows print an
//! integer when the value is whole, `nan` marks an empty set, Cnt is an integer.

use std::fmt::Write as _;

use super::report::{LatencyTable, Report, RowFormat, TableRow};
use super::stats::{Summary, percentile_label};

/// The whole text report: headline first, then coverage, groups, bias, the original's output.
pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let cov = &r.coverage;
    let _ = writeln!(
        s,
        "cfxm report: {} nodes, {} blocks ({} on every node), {} sampled transactions tracked",
        r.nodes, cov.blocks_seen, cov.blocks_complete, r.original.total_txs
    );
    let _ = writeln!(
        s,
        "read {} from {} logs ({} matching lines) in {:.1} s on {} threads",
        human_bytes(r.input.bytes),
        r.input.files,
        r.input.matched_lines,
        r.input.elapsed_ms as f64 / 1000.0,
        r.input.threads
    );
    s.push('\n');
    s.push_str("Block broadcast latency from the generator's own log time (headline; seconds)\n");
    s.push_str(&table(&r.headline, "log-time latency (s)"));
    s.push_str(&coverage_line(r));
    let low: Vec<_> = {
        let mut nodes: Vec<_> = r
            .coverage
            .nodes
            .iter()
            .filter(|n| n.blocks_synced < cov.blocks_seen)
            .collect();
        nodes.sort_by_key(|n| n.blocks_synced);
        nodes.into_iter().take(5).collect()
    };
    if !low.is_empty() {
        let items: Vec<String> = low
            .iter()
            .map(|n| format!("{} {}/{}", n.node, n.blocks_synced, cov.blocks_seen))
            .collect();
        let _ = writeln!(s, "Lowest node coverage: {}", items.join(", "));
    }
    s.push('\n');

    if r.groups.len() > 1 {
        s.push_str("Receive latency by node group (pooled over blocks x nodes; seconds)\n");
        s.push_str(&group_table(r));
        s.push('\n');
    }

    s.push_str(&bias_paragraph(r));
    s.push('\n');

    let o = &r.original;
    s.push_str(
        "Original report (stat_latency_rs layout; block latencies from header timestamps)\n",
    );
    let _ = writeln!(s, "{} nodes in total", o.nodes);
    let _ = writeln!(s, "{} blocks generated", o.blocks);
    let _ = writeln!(
        s,
        "Removed tx count (txs have not fully propagated) {}",
        o.removed_txs
    );
    let _ = writeln!(s, "Unpacked tx count {}", o.unpacked_txs);
    let _ = writeln!(s, "Total tx count {}", o.total_txs);
    let _ = writeln!(s, "{} txs generated", o.txs_generated);
    match o.throughput {
        Some(t) => {
            let _ = writeln!(s, "Test duration is {:.2} seconds", o.duration_s);
            let _ = writeln!(s, "Throughput is {t}");
        }
        None => {
            s.push_str("Test duration is 0.00 seconds\n");
            s.push_str("Throughput is N/A (duration is 0)\n");
        }
    }
    if let Some(h) = &o.slowest_packed_tx {
        let _ = writeln!(s, "Slowest packed transaction hash: {h}");
    }
    s.push_str(&original_table(&o.table));

    if !r.warnings.is_empty() {
        s.push_str("\nWarnings:\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {w}");
        }
    }
    s
}

/// The original's table exactly: title cell `name_tmp`, columns Avg P10 … P999 Max Cnt.
pub fn original_table(t: &LatencyTable) -> String {
    table(t, "name_tmp")
}

fn coverage_line(r: &Report) -> String {
    let cov = &r.coverage;
    let mut s = format!(
        "Coverage: {} blocks seen, {} inserted by every node",
        cov.blocks_seen, cov.blocks_complete
    );
    if cov.blocks_incomplete > 0 {
        let _ = write!(
            s,
            ", {} missing on some nodes (counted; their percentiles use the nodes that logged them)",
            cov.blocks_incomplete
        );
    }
    if cov.blocks_without_generator > 0 {
        let _ = write!(
            s,
            ", {} without a generator line (not in the headline)",
            cov.blocks_without_generator
        );
    }
    s.push('\n');
    s
}

fn bias_paragraph(r: &Report) -> String {
    let b = &r.bias;
    let at = |sum: &Summary, p: f64| fmt_opt(sum.at(&b.percentiles, p), RowFormat::Fixed2);
    format!(
        "Header-timestamp bias: blocks were made on average {} s after their whole-second header \
         timestamp (P50 {}, max {}), so the original's latencies below read high by that much \
         (Receive, header method - log-time method: mean {} s over {} samples).\n",
        fmt_opt(b.per_block.avg, RowFormat::Fixed2),
        at(&b.per_block, 50.0),
        fmt_opt(b.per_block.max, RowFormat::Fixed2),
        fmt_opt(b.receive.avg, RowFormat::Fixed2),
        b.receive.cnt
    )
}

fn group_table(r: &Report) -> String {
    let pct = &r.headline.percentiles;
    let mut head = vec!["group".to_string(), "nodes".into(), "Avg".into()];
    head.extend(pct.iter().map(|p| percentile_label(*p)));
    head.extend(["Max".to_string(), "Cnt".into()]);
    let rows: Vec<Vec<String>> = r
        .groups
        .iter()
        .map(|g| {
            let mut row = vec![g.group.clone(), g.nodes.to_string()];
            row.extend(summary_cells(&g.receive, RowFormat::Fixed2));
            row
        })
        .collect();
    grid(&head, &rows)
}

/// A table in the original's style with `title` in the first header cell.
fn table(t: &LatencyTable, title: &str) -> String {
    let mut head = vec![title.to_string(), "Avg".into()];
    head.extend(t.percentiles.iter().map(|p| percentile_label(*p)));
    head.extend(["Max".to_string(), "Cnt".into()]);
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|row| row_cells(row, head.len()))
        .collect();
    grid(&head, &rows)
}

fn row_cells(row: &TableRow, width: usize) -> Vec<String> {
    match &row.summary {
        None => vec![String::new(); width],
        Some(sum) => {
            let mut cells = vec![row.name.clone()];
            cells.extend(summary_cells(sum, row.format));
            cells
        }
    }
}

fn summary_cells(sum: &Summary, format: RowFormat) -> Vec<String> {
    let mut cells = vec![fmt_opt(sum.avg, format)];
    cells.extend(sum.percentiles.iter().map(|v| fmt_opt(*v, format)));
    cells.push(fmt_opt(sum.max, format));
    cells.push(sum.cnt.to_string());
    cells
}

fn fmt_opt(v: Option<f64>, format: RowFormat) -> String {
    match v {
        None => "nan".into(),
        Some(v) if v.is_nan() => "nan".into(),
        Some(v) => match format {
            RowFormat::IntegerOrFixed2 if (v - v.round()).abs() < 1e-9 => {
                format!("{}", v.round() as i64)
            }
            _ => format!("{v:.2}"),
        },
    }
}

/// prettytable-rs's look: `+---+` rules at top, under the title and at the bottom.
fn grid(head: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let rule = {
        let mut s = String::from("+");
        for w in &widths {
            s.push_str(&"-".repeat(w + 2));
            s.push('+');
        }
        s.push('\n');
        s
    };
    let line = |cells: &[String]| {
        let mut s = String::from("|");
        for (i, w) in widths.iter().enumerate() {
            let c = cells.get(i).map_or("", String::as_str);
            let pad = w - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s.push('\n');
        s
    };
    let mut out = String::new();
    out.push_str(&rule);
    out.push_str(&line(head));
    out.push_str(&rule);
    for row in rows {
        out.push_str(&line(row));
    }
    out.push_str(&rule);
    out
}

/// A Markdown summary for a pull request or an issue.
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let cov = &r.coverage;
    let _ = writeln!(s, "## cfxm latency report\n");
    let _ = writeln!(
        s,
        "**{} nodes, {} blocks** ({} inserted by every node{}). Latency is measured from the \
         generating node's own log time of each block (seconds).\n",
        r.nodes,
        cov.blocks_seen,
        cov.blocks_complete,
        if cov.blocks_incomplete > 0 {
            format!(
                "; {} missing on some nodes, counted, with percentiles over the nodes that logged them",
                cov.blocks_incomplete
            )
        } else {
            String::new()
        }
    );
    let pct = &r.headline.percentiles;
    let mut head = vec!["block broadcast latency".to_string(), "Avg".into()];
    head.extend(pct.iter().map(|p| percentile_label(*p)));
    head.extend(["Max".to_string(), "Cnt".into()]);
    md_row(&mut s, &head);
    md_row(
        &mut s,
        &head
            .iter()
            .enumerate()
            .map(|(i, _)| if i == 0 { "---".into() } else { "---:".into() })
            .collect::<Vec<_>>(),
    );
    let wanted = ["/P50)", "/P90)", "/P99)", "/Max)"];
    for row in &r.headline.rows {
        let Some(sum) = &row.summary else { continue };
        if !wanted.iter().any(|w| row.name.contains(w)) {
            continue;
        }
        let label = row
            .name
            .trim_start_matches("block broadcast latency (")
            .trim_end_matches(')');
        let mut cells = vec![format!("`{label}`")];
        cells.extend(summary_cells(sum, row.format));
        md_row(&mut s, &cells);
    }
    s.push('\n');
    let b = &r.bias;
    let _ = writeln!(
        s,
        "The original tool's header-timestamp method reads {} s high on average for this run \
         (whole-second header timestamps); its full table is in `report.txt`.\n",
        fmt_opt(b.receive.avg, RowFormat::Fixed2)
    );
    if r.groups.len() > 1 {
        let mut head = vec!["group".to_string(), "nodes".into(), "Avg".into()];
        head.extend(pct.iter().map(|p| percentile_label(*p)));
        head.extend(["Max".to_string(), "Cnt".into()]);
        let _ = writeln!(s, "Receive latency by node group:\n");
        md_row(&mut s, &head);
        md_row(
            &mut s,
            &head
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---".into() } else { "---:".into() })
                .collect::<Vec<_>>(),
        );
        for g in &r.groups {
            let mut cells = vec![g.group.clone(), g.nodes.to_string()];
            cells.extend(summary_cells(&g.receive, RowFormat::Fixed2));
            md_row(&mut s, &cells);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "Plots: `plots/latency_cdf.svg`, `plots/latency_by_group.svg`, `plots/propagation.svg` (PNG beside each).\n"
    );
    if !r.warnings.is_empty() {
        s.push_str("<details><summary>Warnings</summary>\n\n");
        for w in &r.warnings {
            let _ = writeln!(s, "- {}", w.replace('|', "\\|"));
        }
        s.push_str("\n</details>\n");
    }
    s
}

fn md_row(s: &mut String, cells: &[String]) {
    s.push('|');
    for c in cells {
        let _ = write!(s, " {} |", c.replace('|', "\\|"));
    }
    s.push('\n');
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats_follow_the_original() {
        assert_eq!(fmt_opt(Some(2.0), RowFormat::Fixed2), "2.00");
        assert_eq!(fmt_opt(Some(2.0), RowFormat::IntegerOrFixed2), "2");
        assert_eq!(fmt_opt(Some(2.345), RowFormat::IntegerOrFixed2), "2.35");
        assert_eq!(fmt_opt(None, RowFormat::Fixed2), "nan");
    }

    #[test]
    fn grid_looks_like_prettytable() {
        let g = grid(
            &["name_tmp".into(), "Avg".into()],
            &[vec!["row".into(), "1.00".into()], vec![String::new(); 2]],
        );
        assert_eq!(
            g,
            "+----------+------+\n\
             | name_tmp | Avg  |\n\
             +----------+------+\n\
             | row      | 1.00 |\n\
             |          |      |\n\
             +----------+------+\n"
        );
    }
}
