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
            "i-gone (local {d}): local host slot `{d}` does not exist",
            d = dir.display()
        )
    );
    assert!(
        t.put(PutSource::Bytes(b"x"), "f", 0o644).await.is_err(),
        "a put must not create the slot"
    );
    assert!(!dir.exists());
}
