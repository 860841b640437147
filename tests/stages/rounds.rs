//! The bound on replacement rounds: hosts that never answer (every new slot broken as soon as
//! the hosts step finishes, deterministically, from the reporter) are replaced twice within
//! one apply, then the apply fails naming the last of them, with nothing left behind but the
//! hosts the spec wants.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cfxm::apply::run::{ApplyRequest, CommandError, PlanRequest, REPLACE_ROUNDS};
use cfxm::apply::{ApplyEvent, ApplyEventKind, ApplyOptions, Cancel, Reporter};
use cfxm::state::StateDir;

use crate::{load, spec_text};

/// Breaks every slot (a directory replaced by a file) whenever a step finishes: each host the
/// apply makes is down before `reach` probes it.
struct SlotBreaker {
    slots: PathBuf,
    broken: Mutex<Vec<String>>,
}

impl Reporter for SlotBreaker {
    fn report(&self, event: ApplyEvent) {
        if !matches!(event.kind, ApplyEventKind::Finished(_)) {
            return;
        }
        let Ok(entries) = std::fs::read_dir(&self.slots) else {
            return;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                std::fs::remove_dir_all(e.path()).unwrap();
                std::fs::write(e.path(), "down").unwrap();
                let id = e.file_name().to_string_lossy().into_owned();
                self.broken.lock().unwrap().push(id);
            }
        }
    }
}

/// What `on_round` was told: (round, of, hosts that did not answer, hosts the plan destroys).
type RoundSeen = (u32, u32, Vec<String>, usize);

fn hosts(state: &Path) -> Vec<String> {
    let hosts: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(state.join("hosts.json")).unwrap()).unwrap();
    hosts
        .iter()
        .map(|h| h["instance_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_that_never_answer_are_replaced_a_bounded_number_of_times_then_named() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tmp = tempfile::tempdir().unwrap();
    let spec = load(&spec_text(&[("ap-southeast-1", 2)], 2, ""), tmp.path());
    let state_dir = StateDir::new(tmp.path().join("state"));
    let state = tmp.path().join("state").join("stages-test");
    let request = ApplyRequest {
        plan: PlanRequest {
            spec,
            state_dir,
            settings: cfxm::plan::Settings::default(),
            only: vec![],
            skip: vec![],
            stages: cfxm::stages::all().to_vec(),
        },
        saved: None,
        options: ApplyOptions::default(),
    };
    let breaker = Arc::new(SlotBreaker {
        slots: state.join("slots"),
        broken: Mutex::new(Vec::new()),
    });
    let cancel = Cancel::new();
    let mut prepared = cfxm::apply::run::prepare_apply(request, &|_| {}, breaker.clone(), &cancel)
        .await
        .unwrap();
    // A dead slot is down at once: no need to wait between probe attempts here.
    prepared.ctx.stage_options.reach_retry_delay = Duration::from_millis(10);
    let rounds: Mutex<Vec<RoundSeen>> = Mutex::new(Vec::new());
    let on_round = |r: cfxm::apply::run::Round<'_>| {
        let destroyed = r
            .plan
            .changes
            .iter()
            .filter_map(|c| c.hosts.as_ref())
            .map(|h| h.destroy.len())
            .sum();
        rounds.lock().unwrap().push((
            r.number,
            r.of,
            r.unreachable
                .iter()
                .map(|h| h.instance_id.clone())
                .collect(),
            destroyed,
        ));
    };
    let err = prepared
        .execute(breaker.clone(), cancel, &|_| {}, &on_round)
        .await
        .err()
        .expect("the apply fails");
    let broken = breaker.broken.lock().unwrap().clone();
    // One host a round: the first, then two replacements, each broken once.
    assert_eq!(broken.len(), 3, "{broken:?}");
    let rounds = rounds.into_inner().unwrap();
    assert_eq!(
        rounds,
        [
            (1, REPLACE_ROUNDS, vec![broken[0].clone()], 1),
            (2, REPLACE_ROUNDS, vec![broken[1].clone()], 1),
        ]
    );
    match &err {
        CommandError::StillUnreachable { hosts, rounds } => {
            assert_eq!(*rounds, 2);
            assert_eq!(*hosts, format!("{} (ap-southeast-1)", broken[2]));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        format!(
            "hosts still did not answer after 2 rounds of replacement: {} (ap-southeast-1)",
            broken[2]
        )
    );
    // No leak: the hosts the spec wants (the last replacement), and only its slot.
    assert_eq!(hosts(&state), [broken[2].clone()]);
    let slots: Vec<String> = std::fs::read_dir(state.join("slots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(slots, [broken[2].clone()]);
}
