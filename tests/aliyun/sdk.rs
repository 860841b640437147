//! The official Alibaba Cloud Python SDK (`alibabacloud-ecs20140526`,
//! `alibabacloud-vpc20160428`, pinned in `scripts/requirements-test.txt`) drives the emulator,
//! with V3 signing and again with `signature_algorithm="v2"`: once with both clients, and once
//! replaying the original tool's provisioning through the ECS client alone (its network built
//! with the ECS API's legacy VPC actions). The script is `tests/aliyun/sdk_conformance.py`; it
//! exits non-zero on the first mismatch.

use std::path::PathBuf;
use std::process::Command;

use super::*;

/// The test venv: `CFXM_TEST_VENV`, else `target/test-venv`. Missing is a failure, never a skip.
fn python() -> PathBuf {
    let venv = std::env::var_os("CFXM_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/test-venv"));
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "no Python venv at `{}`: run `scripts/test` (it installs the pinned SDK from scripts/requirements-test.txt)",
        venv.display()
    );
    let probe = Command::new(&python)
        .args([
            "-c",
            "import alibabacloud_ecs20140526, alibabacloud_vpc20160428",
        ])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "the venv lacks the Alibaba Cloud SDK ({}): run `scripts/test`",
        String::from_utf8_lossy(&probe.stderr)
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdk_drives_the_emulator_in_both_signing_modes() {
    let python = python();
    let emu = start(cfxm::emulator::EmulatorConfig::default()).await;
    let script = root().join("tests/aliyun/sdk_conformance.py");
    let endpoint = emu.addr().to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("EMULATOR_ENDPOINT", endpoint)
            .env("EMULATOR_ACCESS_KEY_ID", "cfxm-local")
            .env("EMULATOR_ACCESS_KEY_SECRET", "cfxm-local-secret")
            .env("PUBLIC_KEY", super::roundtrip::PUBLIC_KEY)
            .env("FINGERPRINT", super::roundtrip::FINGERPRINT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the SDK script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    for mode in ["v3", "v2", "original-v3", "original-v2", "wrong-secret"] {
        assert!(
            stdout.contains(&format!("OK {mode}\n")),
            "no `OK {mode}`:\n{stdout}"
        );
    }

    // The emulator saw both schemes, and the SDK's NoStock call failed as it should.
    let calls = emu.calls();
    assert!(
        calls
            .iter()
            .any(|c| c.signature == "V3" && c.action == "RunInstances")
    );
    assert!(
        calls
            .iter()
            .any(|c| c.signature == "V1" && c.action == "RunInstances")
    );
    assert!(
        calls
            .iter()
            .any(|c| c.code.as_deref() == Some("OperationDenied.NoStock") && c.status == 403)
    );
    assert!(
        calls
            .iter()
            .any(|c| c.code.as_deref() == Some("SignatureDoesNotMatch"))
    );
    // The replay's network went through the ECS API (`2014-05-26`), in both signing modes.
    for action in [
        "CreateVpc",
        "DescribeVpcs",
        "DeleteVpc",
        "CreateVSwitch",
        "DescribeVSwitches",
        "DeleteVSwitch",
    ] {
        for scheme in ["V3", "V1"] {
            assert!(
                calls.iter().any(|c| c.api == "ecs"
                    && c.action == action
                    && c.signature == scheme
                    && c.status == 200),
                "no successful ECS-API {action} signed {scheme}"
            );
        }
    }
    // Everything the script created, it deleted.
    let w = emu.world();
    for kind in ["instance", "vpc", "vswitch", "security_group", "key_pair"] {
        assert_eq!(w.of_kind(kind).count(), 0, "{kind} left behind");
    }
    emu.shutdown().await;
}
