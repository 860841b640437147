//! Finding the per-node logs of a run and opening them as byte streams.
//!
//! Layout (DESIGN §9, the `collect` stage): `RUN_DIR/logs/<host>-<i>/conflux.log`, one node per
//! directory, plain or compressed as `conflux.log.zst` or `conflux.log.gz`. A directory holding
//! more than one form of the log is an error rather than a silent choice: it would count the node
//! twice or hide a stale copy. Any `conflux.log` further below `logs/` also counts (the original's
//! mapper walks the tree), and a run without `logs/` is read from RUN_DIR itself.
//!
//! Decoders: `flate2` with the pure-Rust miniz_oxide backend for gzip, and the `zstd` crate
//! (libzstd, built from source by `cc`; no system library) for zstd. zstd is the format the
//! `collect` stage should write, through [`compress`], so collection and analysis share one
//! dependency. Measured on this project's 2-core machine, on a node log: libzstd decodes at
//! 1.7–2.0 GB/s against 0.2–0.5 GB/s for the pure-Rust `ruzstd`, and encodes at level 3 at
//! ~500 MB/s with ratio 7.2 against `ruzstd`'s ~90 MB/s and 5.1 at its fastest level; the price is
//! ~20 s more on a clean build. With `ruzstd`, decoding alone held `.zst` analysis under 300 MB/s
//! per core. gzip (miniz_oxide) decodes at ~250 MB/s: fine for old runs, not the default.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::AnalyzeError;

/// How a node's log is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Plain,
    Gzip,
    Zstd,
}

impl Compression {
    /// The log's file name in this form.
    pub fn file_name(self) -> &'static str {
        match self {
            Compression::Plain => "conflux.log",
            Compression::Gzip => "conflux.log.gz",
            Compression::Zstd => "conflux.log.zst",
        }
    }
}

/// One node's log file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeLog {
    /// The node's name: its directory relative to `logs/`, e.g. `10.0.0.7-0`.
    pub name: String,
    pub path: PathBuf,
    pub compression: Compression,
    /// Size on disk (compressed size for compressed logs).
    pub disk_bytes: u64,
}

/// Deepest directory visited below `logs/`; bounds a walk through a symlink loop.
const MAX_DEPTH: usize = 8;

/// Every node log under the run directory, sorted by node name.
pub(crate) fn discover(run_dir: &Path) -> Result<Vec<NodeLog>, AnalyzeError> {
    if !run_dir.is_dir() {
        return Err(AnalyzeError::RunDirMissing {
            path: run_dir.to_path_buf(),
        });
    }
    let root = run_dir.join("logs");
    let root = if root.is_dir() {
        root
    } else {
        run_dir.to_path_buf()
    };
    let mut logs: Vec<NodeLog> = Vec::new();
    let mut stack = vec![(root.clone(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| AnalyzeError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| AnalyzeError::Io {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            let file_type = entry.file_type().map_err(|source| AnalyzeError::Io {
                path: path.clone(),
                source,
            })?;
            // Follow symlinked node directories (a run assembled from several collections).
            let is_dir = file_type.is_dir()
                || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_dir()));
            if is_dir {
                if depth < MAX_DEPTH {
                    stack.push((path, depth + 1));
                }
                continue;
            }
            let compression = match entry.file_name().to_str() {
                Some("conflux.log") => Compression::Plain,
                Some("conflux.log.gz") => Compression::Gzip,
                Some("conflux.log.zst") => Compression::Zstd,
                _ => continue,
            };
            let parent = path.parent().unwrap_or(&root);
            let name = parent
                .strip_prefix(&root)
                .ok()
                .filter(|p| !p.as_os_str().is_empty())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .unwrap_or_else(|| ".".to_string());
            let disk_bytes = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if let Some(other) = logs.iter().find(|l| l.name == name) {
                return Err(AnalyzeError::DuplicateLog {
                    first: other.path.clone(),
                    second: path,
                });
            }
            logs.push(NodeLog {
                name,
                path,
                compression,
                disk_bytes,
            });
        }
    }
    if logs.is_empty() {
        return Err(AnalyzeError::NoLogs {
            path: run_dir.to_path_buf(),
        });
    }
    logs.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    Ok(logs)
}

/// Opens a log as a stream of decompressed bytes.
pub(crate) fn open(log: &NodeLog) -> Result<Box<dyn Read + Send>, AnalyzeError> {
    let io = |source| AnalyzeError::Io {
        path: log.path.clone(),
        source,
    };
    let file = File::open(&log.path).map_err(io)?;
    Ok(match log.compression {
        Compression::Plain => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        ))),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(1 << 16, file))
                .map_err(|e| AnalyzeError::Decode {
                    path: log.path.clone(),
                    message: e.to_string(),
                })?,
        ),
    })
}

/// Compresses `data` in the given form (plain returns it as is): the encoder the analyzer can read.
/// zstd uses level 3 (libzstd's default); gzip uses flate2's fast level.
pub fn compress(data: &[u8], compression: Compression) -> Vec<u8> {
    match compression {
        Compression::Plain => data.to_vec(),
        Compression::Gzip => {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(data).expect("writing to a Vec cannot fail");
            enc.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => {
            zstd::bulk::compress(data, 3).expect("compressing to memory cannot fail")
        }
    }
}

/// Orders `host-2` before `host-10`: digit runs compare as numbers.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut x, mut y) = (a.as_bytes(), b.as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, Some(_)) => return std::cmp::Ordering::Less,
            (Some(_), None) => return std::cmp::Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let n = x.iter().take_while(|b| b.is_ascii_digit()).count();
                let m = y.iter().take_while(|b| b.is_ascii_digit()).count();
                let (p, q) = (&x[..n], &y[..m]);
                let (p0, q0) = (trim_zeros(p), trim_zeros(q));
                let ord = p0.len().cmp(&q0.len()).then_with(|| p0.cmp(q0));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                x = &x[n..];
                y = &y[m..];
            }
            (Some(c), Some(d)) => {
                if c != d {
                    return c.cmp(d);
                }
                x = &x[1..];
                y = &y[1..];
            }
        }
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|b| **b == b'0').count();
    &s[n.min(s.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["h-10", "h-2", "h-1", "g-3"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["g-3", "h-1", "h-2", "h-10"]);
    }

    #[test]
    fn all_forms_round_trip() {
        let data = b"line one\nline two\n".repeat(1000);
        let dir = tempfile::tempdir().unwrap();
        for c in [Compression::Plain, Compression::Gzip, Compression::Zstd] {
            let node = dir.path().join("logs").join(format!("{c:?}-0"));
            std::fs::create_dir_all(&node).unwrap();
            std::fs::write(node.join(c.file_name()), compress(&data, c)).unwrap();
        }
        let logs = discover(dir.path()).unwrap();
        assert_eq!(logs.len(), 3);
        for log in &logs {
            let mut out = Vec::new();
            open(log).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data, "{:?}", log.compression);
        }
    }

    #[test]
    fn concatenated_frames_and_members_are_read_whole() {
        // `zstd`/`gzip` appending to an existing file, or `cat a.zst b.zst`, makes several frames.
        let dir = tempfile::tempdir().unwrap();
        for c in [Compression::Gzip, Compression::Zstd] {
            let node = dir.path().join(format!("logs/{c:?}-0"));
            std::fs::create_dir_all(&node).unwrap();
            let mut bytes = compress(b"first\n", c);
            bytes.extend(compress(b"second\n", c));
            std::fs::write(node.join(c.file_name()), bytes).unwrap();
        }
        for log in discover(dir.path()).unwrap() {
            let mut out = String::new();
            open(&log).unwrap().read_to_string(&mut out).unwrap();
            assert_eq!(out, "first\nsecond\n", "{:?}", log.compression);
        }
    }

    #[test]
    fn two_forms_of_one_log_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("logs/h-0");
        std::fs::create_dir_all(&node).unwrap();
        std::fs::write(node.join("conflux.log"), b"").unwrap();
        std::fs::write(
            node.join("conflux.log.gz"),
            compress(b"", Compression::Gzip),
        )
        .unwrap();
        assert!(matches!(
            discover(dir.path()),
            Err(AnalyzeError::DuplicateLog { .. })
        ));
        assert!(matches!(
            discover(&dir.path().join("nope")),
            Err(AnalyzeError::RunDirMissing { .. })
        ));
    }
}
