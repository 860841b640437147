//! What only the local transport has: the slot is the working directory and `$HOME`.

use cfxm::ssh::{LocalTransport, PutSource, Transport, TransportError};

#[tokio::test]
async fn the_slot_is_home_and_relative_paths_live_in_it() {
    let slot = tempfile::tempdir().unwrap();
    let t = LocalTransport::new("i-local-1", slot.path());
    let t: &dyn Transport = &t;
    let out = t.run("pwd; echo $HOME", None).await.unwrap();
    let dir = slot.path().canonicalize().unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(std::path::Path::new(lines[0]).canonicalize().unwrap(), dir);
    assert_eq!(lines[1], slot.path().display().to_string());

    t.put(PutSource::Bytes(b"cfg"), "~/config.toml", 0o644)
        .await
        .unwrap();
    t.put(PutSource::Bytes(b"log"), "log0/conflux.log", 0o644)
        .await
        .unwrap();
    assert_eq!(
        t.run("cat $HOME/config.toml log0/conflux.log", None)
            .await
            .unwrap(),
        b"cfglog"
    );
}

#[tokio::test]
async fn a_missing_slot_is_a_clear_error() {
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("slots/i-gone");
    let t = LocalTransport::new("i-gone", &dir);
    let t: &dyn Transport = &t;
    let err = t.output("true", None).await.unwrap_err();
    assert!(matches!(err, TransportError::NoSlot { .. }), "{err:?}");
    assert!(err.is_unreachable());
    assert_eq!(
        err.to_string(),
        format!(
            "i-gone (local {d}): local host slot `{d}` is not a directory (missing or replaced): the host is down",
            d = dir.display()
        )
    );
    assert!(
        t.put(PutSource::Bytes(b"x"), "f", 0o644).await.is_err(),
        "a put must not create the slot"
    );
    assert!(!dir.exists());
}

/// The fan-out over local slots: every host's lines, outcomes in host order, bounded
/// parallelism (20 hosts × 0.2 s, 4 at a time, cannot take less than 1 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reports_every_host_and_bounds_parallelism() {
    use cfxm::ssh::fanout::{self, Action, FanoutEvent, Outcome, OutcomeClass, Target};
    use std::sync::{Arc, Mutex};
    let state = tempfile::tempdir().unwrap();
    let targets: Vec<Target> = (0..20)
        .map(|i| {
            let dir = state.path().join(format!("slots/i-{i}"));
            std::fs::create_dir_all(&dir).unwrap();
            Target {
                label: format!("i-{i}").into(),
                transport: Arc::new(LocalTransport::new(format!("i-{i}"), dir)),
            }
        })
        .collect();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = seen.clone();
        Arc::new(move |e: FanoutEvent| seen.lock().unwrap().push(e)) as fanout::EventSink
    };
    let start = std::time::Instant::now();
    let report = fanout::run(
        targets,
        Action::Exec {
            command: "basename \"$HOME\"; sleep 0.2; [ \"$(basename $HOME)\" != i-7 ] || exit 4"
                .into(),
            timeout: None,
        },
        4,
        sink,
    )
    .await;
    assert!(start.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(report.summary(), "19 ok, 1 failed (exit 4), 0 unreachable");
    assert_eq!(report.count(OutcomeClass::Failed), 1);
    let labels: Vec<&str> = report.results.iter().map(|(l, _)| &**l).collect();
    assert_eq!(labels[7], "i-7");
    assert!(matches!(report.results[7].1, Outcome::Exit(_)));
    let events = seen.lock().unwrap();
    for i in 0..20 {
        let host = format!("i-{i}");
        let lines: Vec<&[u8]> = events
            .iter()
            .filter_map(|e| match e {
                FanoutEvent::Line { host: h, line, .. } if **h == *host => Some(&line[..]),
                _ => None,
            })
            .collect();
        assert_eq!(lines, [host.as_bytes()]);
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, FanoutEvent::Done { .. }))
            .count(),
        20
    );
}
