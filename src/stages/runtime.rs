//! How nodes run on a host, and the shell commands that start, check and stop them.
//!
//! - [`Runtime::Docker`] (cloud hosts, reached by SSH): the original's containers
//!   (original-tool.md §2.3): `conflux_node_<i>`, `~/config.toml` mounted read-only, `$HOME/log<i>`
//!   as `/root/log`, host ports `11000+10i+k` → container `11000+k`, image `conflux-node:latest`,
//!   `./conflux --config /root/config.toml`. Not `--privileged` (original-tool.md §5.3: nothing
//!   in a node needs it). `sudo` when the SSH user is not root, as the original does on AWS.
//! - [`Runtime::Devnode`] (local hosts, the local cloud's slots): `cfxm devnode` processes in
//!   `node<i>/` of the slot, each with its config, `log/` and a pid file. The processes are
//!   detached (their own session, so neither Ctrl-C nor the end of the launching command stops
//!   them) and tracked by `node<i>/pid`, which records the pid *and* the process's start time
//!   (`/proc/<pid>/stat` field 22): a pid is treated as ours only while both match, so a reused
//!   pid is never signalled.
//!
//! Every command is POSIX sh plus coreutils (`sed`, `cut`, `grep`, `awk`, `gzip`), the only
//! programs the stages need on a host besides docker.

use std::path::Path;

use super::config::slot_ports;
use crate::ssh::hosts::Host;
use crate::ssh::shell_quote;

/// The tag every cloud host's image is run as (the original's `conflux-node:latest`).
pub const LOCAL_IMAGE_TAG: &str = "conflux-node:latest";

/// How nodes run on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runtime {
    Docker {
        /// Prefix commands with `sudo` (the SSH user is not root).
        sudo: bool,
    },
    Devnode {
        /// The `cfxm` binary, as an absolute path on this machine.
        bin: String,
    },
}

impl Runtime {
    /// The runtime of `host`: devnode on local hosts, docker elsewhere.
    pub fn for_host(host: &Host, devnode_bin: &Path) -> Runtime {
        if host.is_local() {
            Runtime::Devnode {
                bin: devnode_bin.display().to_string(),
            }
        } else {
            Runtime::Docker {
                sudo: host.record.ssh_user != "root",
            }
        }
    }

    /// `docker` or `devnode`, for records.
    pub fn kind(&self) -> &'static str {
        match self {
            Runtime::Docker { .. } => "docker",
            Runtime::Devnode { .. } => "devnode",
        }
    }

    fn sudo(&self) -> &'static str {
        match self {
            Runtime::Docker { sudo: true } => "sudo ",
            _ => "",
        }
    }

    /// The node's log directory on the host, relative to the login home.
    pub fn log_dir(&self, slot: u32) -> String {
        match self {
            Runtime::Docker { .. } => format!("log{slot}"),
            Runtime::Devnode { .. } => format!("node{slot}/log"),
        }
    }

    /// Where the node's config goes on the host (docker: one file shared by every slot).
    pub fn config_path(&self, slot: u32) -> String {
        match self {
            Runtime::Docker { .. } => "config.toml".into(),
            Runtime::Devnode { .. } => format!("node{slot}/conflux.toml"),
        }
    }

    /// Removes every node of a previous run on the host and the directories it used. Devnode:
    /// stops what the pid files show to be ours first.
    pub fn clear_command(&self, stop_timeout_s: u64) -> String {
        match self {
            Runtime::Docker { .. } => {
                let s = self.sudo();
                format!(
                    "ids=$({s}docker ps -aq --filter name=^conflux_node_); \
                     [ -z \"$ids\" ] || {s}docker rm -f $ids >/dev/null; \
                     {s}rm -rf \"$HOME\"/log[0-9]* \"$HOME\"/output[0-9]*"
                )
            }
            Runtime::Devnode { .. } => format!(
                "{DEVNODE_FUNCTIONS}\nfor d in node[0-9]*; do [ -d \"$d\" ] && cfxm_stop \"$d\" {stop_timeout_s} >/dev/null; done; rm -rf node[0-9]*"
            ),
        }
    }

    /// Starts the nodes in `slots` (configs already in place).
    pub fn start_command(&self, slots: &[u32]) -> String {
        match self {
            Runtime::Docker { .. } => {
                let s = self.sudo();
                let mut cmd = String::from("set -e");
                for &i in slots {
                    let ports: String = slot_ports(i)
                        .iter()
                        .zip(slot_ports(0))
                        .map(|(host, inner)| format!(" -p {host}:{inner}"))
                        .collect();
                    cmd.push_str(&format!(
                        "\n{s}docker rm -f conflux_node_{i} >/dev/null 2>&1 || true\
                         \n{s}rm -rf \"$HOME/log{i}\" && mkdir -p \"$HOME/log{i}\"\
                         \n{s}docker run -d --name conflux_node_{i} -w /root \
                         -v \"$HOME/config.toml:/root/config.toml:ro\" -v \"$HOME/log{i}:/root/log\"\
                         {ports} {LOCAL_IMAGE_TAG} ./conflux --config /root/config.toml >/dev/null"
                    ));
                }
                cmd
            }
            Runtime::Devnode { bin } => {
                let mut cmd = format!("set -e\n{DEVNODE_FUNCTIONS}\nBIN={}", shell_quote(bin));
                for &i in slots {
                    cmd.push_str(&format!("\ncfxm_start node{i}"));
                }
                cmd
            }
        }
    }

    /// Prints one line per slot in `slots`: `<slot> running` or `<slot> stopped`.
    pub fn status_command(&self, slots: &[u32]) -> String {
        let list = slot_list(slots);
        match self {
            Runtime::Docker { .. } => format!(
                "running=$({}docker ps --filter name=^conflux_node_ --format '{{{{.Names}}}}'); \
                 for i in {list}; do \
                 if printf '%s\\n' \"$running\" | grep -qx \"conflux_node_$i\"; \
                 then echo \"$i running\"; else echo \"$i stopped\"; fi; done",
                self.sudo()
            ),
            Runtime::Devnode { .. } => format!(
                "{DEVNODE_FUNCTIONS}\nfor i in {list}; do \
                 if [ \"$(cfxm_alive node$i/pid)\" = alive ]; \
                 then echo \"$i running\"; else echo \"$i stopped\"; fi; done"
            ),
        }
    }

    /// Stops the nodes in `slots` (`None`: every node on the host, whatever slots an earlier
    /// run used), each given `timeout_s` to exit before it is killed; prints one line per
    /// slot: `<slot> stopped`, `<slot> killed` or `<slot> not-running`.
    pub fn stop_command(&self, slots: Option<&[u32]>, timeout_s: u64) -> String {
        let s = self.sudo();
        let list = match (slots, self) {
            (Some(slots), _) => slot_list(slots),
            (None, Runtime::Docker { .. }) => format!(
                "$({s}docker ps -a --filter name=^conflux_node_ --format '{{{{.Names}}}}' \
                 | sed 's/^conflux_node_//' | grep -E '^[0-9]+$')"
            ),
            (None, Runtime::Devnode { .. }) => {
                "$(for d in node[0-9]*; do [ -d \"$d\" ] && echo \"${d#node}\"; done)".into()
            }
        };
        match self {
            Runtime::Docker { .. } => format!(
                "for i in {list}; do \
                 if [ -n \"$({s}docker ps -q --filter name=^conflux_node_$i\\$)\" ]; then \
                 {s}docker stop -t {timeout_s} conflux_node_$i >/dev/null && echo \"$i stopped\"; \
                 else echo \"$i not-running\"; fi; done"
            ),
            Runtime::Devnode { .. } => format!(
                "{DEVNODE_FUNCTIONS}\nfor i in {list}; do echo \"$i $(cfxm_stop node$i {timeout_s})\"; done"
            ),
        }
    }

    /// Writes to stdout the lines of slot `slot`'s `conflux.log` the analyzer reads, within
    /// `window` when given, gzipped; fails (non-zero, a line on stderr) when the log is missing
    /// or unreadable. `grep` finding nothing is an empty log, not an error.
    pub fn filtered_log_command(&self, slot: u32, window: Option<&LogWindow>) -> String {
        let log = format!("{}/conflux.log", self.log_dir(slot));
        let patterns: String = ANALYSIS_PATTERNS
            .iter()
            .map(|p| format!(" -e {}", shell_quote(p)))
            .collect();
        // A line starts with its RFC 3339 time in UTC, so the window is a string comparison
        // of the first field (`2026-03-04T08:53:44.123456789+00:00` ≥ `2026-03-04T08:53:44`).
        let within = match window {
            Some(w) => format!(
                " | awk -v s={} -v u={} '$1 >= s && $1 < u'",
                w.since_text(),
                w.until_text()
            ),
            None => String::new(),
        };
        format!(
            "f={log}; {s}test -r \"$f\" || {{ echo \"no readable $f\" >&2; exit 3; }}; \
             {{ {s}grep -F{patterns} \"$f\"; rc=$?; [ $rc -le 1 ] || echo \"grep failed ($rc) on $f\" >&2; }}{within} | gzip -c",
            s = self.sudo(),
        )
    }

    /// Writes slot `slot`'s `metrics.log` to stdout (within `window`, by the lines' leading
    /// Unix milliseconds), gzipped; exit 4 when there is none.
    pub fn metrics_log_command(&self, slot: u32, window: Option<&LogWindow>) -> String {
        let log = format!("{}/metrics.log", self.log_dir(slot));
        let within = match window {
            Some(w) => format!(
                " | awk -F, -v s={} -v u={} '$1 + 0 >= s + 0 && $1 + 0 < u + 0'",
                w.since.timestamp_millis(),
                w.until.timestamp_millis()
            ),
            None => String::new(),
        };
        format!(
            "f={log}; {s}test -r \"$f\" || exit 4; {s}cat \"$f\"{within} | gzip -c",
            s = self.sudo()
        )
    }
}

/// The time window of one run's lines in a node's logs: from a little before its `blocks`
/// stage started to a little after it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogWindow {
    pub since: chrono::DateTime<chrono::Utc>,
    pub until: chrono::DateTime<chrono::Utc>,
}

impl LogWindow {
    /// Room on each side for clocks a little apart (a cloud host's and this machine's) and for
    /// the statistics line the node writes every 5 s. A run started within a second of an
    /// earlier one (an interrupted attempt resumed at once) may share its first second.
    pub const MARGIN_BEFORE: std::time::Duration = std::time::Duration::from_secs(1);
    pub const MARGIN_AFTER: std::time::Duration = std::time::Duration::from_secs(6);

    /// The window of a run that generated blocks from `started` to `finished`, starting no
    /// earlier than `not_before` (when the run before it ended).
    pub fn around(
        started: chrono::DateTime<chrono::Utc>,
        finished: chrono::DateTime<chrono::Utc>,
        not_before: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Self {
        let since = started - Self::MARGIN_BEFORE;
        LogWindow {
            since: not_before.map_or(since, |t| since.max(t)),
            until: finished + Self::MARGIN_AFTER,
        }
    }

    /// `since` as the logs write times, to the nanosecond: `2026-03-04T08:53:44.123456789`
    /// (a line of that very instant, `…44.123456789+00:00`, compares above it).
    pub fn since_text(&self) -> String {
        self.since.format("%Y-%m-%dT%H:%M:%S%.9f").to_string()
    }

    /// `until` to the second, rounded up.
    pub fn until_text(&self) -> String {
        (self.until + chrono::Duration::seconds(1))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    }
}

/// Substrings of the `conflux.log` lines the latency analysis reads (conflux-node.md §3.3;
/// the analyzer's own list): everything else stays on the host.
pub const ANALYSIS_PATTERNS: [&str; 7] = [
    "transaction received by block",
    "new block received",
    "new block inserted into graph",
    "insert new block into consensus",
    "Block events record ",
    "Statistics",
    "Sampled transaction",
];

fn slot_list(slots: &[u32]) -> String {
    slots
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Shell functions for devnode processes tracked by pid files (`<pid> <start time>`).
///
/// - `cfxm_alive PIDFILE`: `alive` when the recorded pid runs, is not a zombie, and started at
///   the recorded time; else `dead` (or `none` without a pid file).
/// - `cfxm_start DIR`: runs `$BIN devnode --config conflux.toml` in DIR, detached in its own
///   session, output in `DIR/stdout.txt`, and writes `DIR/pid`.
/// - `cfxm_stop DIR SECONDS`: SIGTERM, waits up to SECONDS for the exit, then SIGKILL; prints
///   `stopped`, `killed` or `not-running`; removes the pid file.
const DEVNODE_FUNCTIONS: &str = r#"cfxm_starttime() { s=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null) || return 1; set -- $s; [ "$1" != Z ] || return 1; echo "$s" | cut -d' ' -f20; }
cfxm_alive() { [ -r "$1" ] || { echo none; return 0; }; read -r pid st < "$1" || { echo dead; return 0; }; now=$(cfxm_starttime "$pid") && [ "$now" = "$st" ] && echo alive || echo dead; }
cfxm_start() { mkdir -p "$1/log"; ( cd "$1" && if command -v setsid >/dev/null 2>&1; then exec setsid "$BIN" devnode --config conflux.toml </dev/null >stdout.txt 2>&1; else exec "$BIN" devnode --config conflux.toml </dev/null >stdout.txt 2>&1; fi ) & pid=$!; st=$(cfxm_starttime "$pid") || st=gone; echo "$pid $st" > "$1/pid"; }
cfxm_stop() { if [ "$(cfxm_alive "$1/pid")" != alive ]; then rm -f "$1/pid"; echo not-running; return 0; fi; read -r pid st < "$1/pid"; kill -TERM "$pid" 2>/dev/null; n=0; while [ "$(cfxm_alive "$1/pid")" = alive ] && [ $n -lt $(($2 * 10)) ]; do sleep 0.1; n=$((n + 1)); done; if [ "$(cfxm_alive "$1/pid")" = alive ]; then kill -KILL "$pid" 2>/dev/null; rm -f "$1/pid"; echo killed; else rm -f "$1/pid"; echo stopped; fi; }"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_commands_use_the_original_names_mounts_and_ports() {
        let r = Runtime::Docker { sudo: true };
        let c = r.start_command(&[0, 2]);
        assert!(
            c.contains(
                "sudo docker run -d --name conflux_node_2 -w /root \
             -v \"$HOME/config.toml:/root/config.toml:ro\" -v \"$HOME/log2:/root/log\" \
             -p 11020:11000 -p 11021:11001 -p 11022:11002 -p 11023:11003 -p 11024:11004 \
             -p 11025:11005 conflux-node:latest ./conflux --config /root/config.toml"
            ),
            "{c}"
        );
        assert!(c.contains("-p 11000:11000"), "{c}");
        assert!(!c.contains("--privileged"));
        assert_eq!(r.log_dir(3), "log3");
        let root = Runtime::Docker { sudo: false };
        assert!(!root.start_command(&[0]).contains("sudo"));
        assert!(
            root.stop_command(Some(&[1]), 10)
                .contains("docker stop -t 10 conflux_node_$i")
        );
    }

    /// Runs `script` with sh in `dir`, returning stdout.
    fn sh(dir: &Path, script: &str) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn devnode_pid_files_track_only_our_process() {
        let tmp = tempfile::tempdir().unwrap();
        // A stand-in "binary" that ignores its arguments and sleeps until signalled.
        let bin = tmp.path().join("fake-cfxm");
        std::fs::write(&bin, "#!/bin/sh\nexec sleep 60\n").unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let r = Runtime::Devnode {
            bin: bin.display().to_string(),
        };
        sh(tmp.path(), &r.start_command(&[0, 1]));
        assert_eq!(
            sh(tmp.path(), &r.status_command(&[0, 1, 2])),
            "0 running\n1 running\n2 stopped\n"
        );
        // A pid file whose start time does not match is not ours: never signalled.
        let pid_file = tmp.path().join("node1/pid");
        let real = std::fs::read_to_string(&pid_file).unwrap();
        let pid: i32 = real.split_whitespace().next().unwrap().parse().unwrap();
        std::fs::write(&pid_file, format!("{pid} 1\n")).unwrap();
        assert_eq!(sh(tmp.path(), &r.status_command(&[1])), "1 stopped\n");
        assert_eq!(
            sh(tmp.path(), &r.stop_command(Some(&[1]), 1)),
            "1 not-running\n"
        );
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "a foreign pid was killed"
        );
        std::fs::write(&pid_file, real).unwrap();
        assert_eq!(
            sh(tmp.path(), &r.stop_command(None, 5)),
            "0 stopped\n1 stopped\n"
        );
        assert_eq!(
            sh(tmp.path(), &r.status_command(&[0, 1])),
            "0 stopped\n1 stopped\n"
        );
        // `clear` removes the directories.
        sh(tmp.path(), &r.clear_command(1));
        assert!(!tmp.path().join("node0").exists());
    }

    #[test]
    fn the_log_filter_keeps_analysis_lines_and_fails_on_a_missing_log() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Runtime::Devnode { bin: "x".into() };
        std::fs::create_dir_all(tmp.path().join("node0/log")).unwrap();
        std::fs::write(
            tmp.path().join("node0/log/conflux.log"),
            "t DEBUG new block inserted into graph: x\nt INFO noise\nt INFO Statistics: y\n",
        )
        .unwrap();
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{} | gzip -dc", r.filtered_log_command(0, None)))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "t DEBUG new block inserted into graph: x\nt INFO Statistics: y\n"
        );
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(r.filtered_log_command(1, None))
            .current_dir(tmp.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no readable node1/log/conflux.log"));
    }

    #[test]
    fn the_window_keeps_one_runs_lines_by_their_leading_time() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Runtime::Devnode { bin: "x".into() };
        std::fs::create_dir_all(tmp.path().join("node0/log")).unwrap();
        std::fs::write(
            tmp.path().join("node0/log/conflux.log"),
            "2026-03-04T08:00:01.000000001+00:00 DEBUG new block inserted into graph: old\n\
             2026-03-04T08:10:00.500000000+00:00 DEBUG new block inserted into graph: mine\n\
             2026-03-04T08:12:00.000000000+00:00 INFO  Statistics: mine too\n\
             2026-03-04T09:00:00.000000000+00:00 DEBUG new block inserted into graph: later\n",
        )
        .unwrap();
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let w = LogWindow::around(t("2026-03-04T08:10:01Z"), t("2026-03-04T08:11:55.5Z"), None);
        assert_eq!(w.since_text(), "2026-03-04T08:10:00.000000000");
        // Never before the previous run ended.
        let later = LogWindow::around(
            t("2026-03-04T08:10:01Z"),
            t("2026-03-04T08:11:55.5Z"),
            Some(t("2026-03-04T08:10:00.5Z")),
        );
        assert_eq!(later.since_text(), "2026-03-04T08:10:00.500000000");
        assert_eq!(w.until_text(), "2026-03-04T08:12:02");
        std::fs::write(
            tmp.path().join("node0/log/metrics.log"),
            format!(
                "{}, a, Group, {{x: 1}}\n{}, a, Group, {{x: 2}}\n",
                t("2026-03-04T08:00:00Z").timestamp_millis(),
                t("2026-03-04T08:11:00Z").timestamp_millis()
            ),
        )
        .unwrap();
        let run = |cmd: String| {
            let out = std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(format!("{cmd} | gzip -dc"))
                .current_dir(tmp.path())
                .output()
                .unwrap();
            assert!(out.stderr.is_empty(), "{out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        let log = run(r.filtered_log_command(0, Some(&w)));
        assert_eq!(
            log.lines()
                .map(|l| l.rsplit(": ").next().unwrap())
                .collect::<Vec<_>>(),
            ["mine", "mine too"]
        );
        let metrics = run(r.metrics_log_command(0, Some(&w)));
        assert_eq!(metrics.lines().count(), 1);
        assert!(metrics.contains("{x: 2}"), "{metrics}");
    }
}
