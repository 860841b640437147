//! JSON-RPC shapes: results and errors as the node returns them, requests without `params`,
//! the public port's API groups versus the local port, batches and malformed input.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::harness;

#[test]
fn rpc_shapes_follow_the_node() {
    let root = tempfile::tempdir().unwrap();
    let secrets = harness::write_secrets(root.path(), 50);
    // The public port serves only cfx and debug here; the local port serves everything.
    let apis = "public_rpc_apis=\"cfx,debug\"\n";
    let mut nodes = [harness::spawn(root.path(), 0, &secrets, apis)];
    let local = SocketAddr::from((nodes[0].ip, nodes[0].local_port));
    nodes[0].ready_on(local);
    let n = &nodes[0];
    let call = |addr, m: &str, p: Option<Value>| harness::rpc(addr, m, p).unwrap();

    // `test` is not public: -32601, as for unknown methods. The local port has it.
    let not_found = json!({"code": -32601, "message": "Method not found"});
    assert_eq!(
        call(n.rpc_addr(), "test_getBlockCount", None),
        Err(not_found.clone())
    );
    assert_eq!(
        call(n.rpc_addr(), "no_such_method", None),
        Err(not_found.clone())
    );
    assert_eq!(call(local, "no_such_method", None), Err(not_found));
    assert_eq!(
        call(local, "test_sayHello", None),
        Ok(json!("Hello, world"))
    );
    assert_eq!(
        call(local, "sayhello", None),
        Ok(json!("Hello, world")),
        "legacy alias"
    );
    assert_eq!(
        call(n.rpc_addr(), "debug_currentSyncPhase", None),
        Ok(json!("NormalSyncPhase"))
    );

    // A fresh chain holds genesis only: count 1 (a JSON number), epoch 0x0.
    assert_eq!(call(local, "test_getBlockCount", None), Ok(json!(1)));
    assert_eq!(
        call(local, "test_getBlockCount", Some(json!([]))),
        Ok(json!(1))
    );
    assert_eq!(
        call(n.rpc_addr(), "cfx_epochNumber", None),
        Ok(json!("0x0"))
    );
    let genesis = call(n.rpc_addr(), "cfx_getBestBlockHash", None).unwrap();
    let hex64 = regex::Regex::new("^0x[0-9a-f]{64}$").unwrap();
    assert!(hex64.is_match(genesis.as_str().unwrap()));
    assert_eq!(call(local, "test_getGoodPut", None), Ok(json!("-1")));
    assert_eq!(call(local, "test_getPeerInfo", None), Ok(json!([])));

    // Blocks: hashes, arrays of hashes, counts.
    let h = call(
        local,
        "test_generateOneBlock",
        Some(json!([10_000_000, 460_800])),
    )
    .unwrap();
    assert!(hex64.is_match(h.as_str().unwrap()));
    let hs = call(local, "test_generateEmptyBlocks", Some(json!([3]))).unwrap();
    assert_eq!(hs.as_array().unwrap().len(), 3);
    assert_eq!(call(local, "test_getBlockCount", None), Ok(json!(5)));
    assert_eq!(
        call(n.rpc_addr(), "cfx_getBestBlockHash", None),
        Ok(hs[2].clone())
    );
    let status = call(n.rpc_addr(), "cfx_getStatus", None).unwrap();
    for key in [
        "bestHash",
        "chainId",
        "ethereumSpaceChainId",
        "networkId",
        "epochNumber",
        "blockNumber",
        "pendingTxNumber",
        "latestCheckpoint",
        "latestConfirmed",
        "latestState",
        "latestFinalized",
    ] {
        assert!(status.get(key).is_some(), "cfx_getStatus.{key}");
    }
    assert_eq!(status["chainId"], json!("0xa"));
    assert_eq!(status["epochNumber"], json!("0x4"));
    assert_eq!(status["blockNumber"], json!("0x5"));
    assert_eq!(
        call(n.rpc_addr(), "cfx_epochNumber", Some(json!(["earliest"]))),
        Ok(json!("0x0"))
    );

    // Transactions: the usable-accounts call answers "0x31".
    assert_eq!(
        call(local, "test_sendUsableGenesisAccounts", Some(json!([0]))),
        Ok(json!("0x31"))
    );

    // Bad params: -32602.
    for (m, p) in [
        ("test_addNode", json!(["0x1234", "127.0.0.1:1"])),
        ("test_addNode", json!([n.id, "not an address"])),
        ("test_getNodeId", json!([[1, 2, 300]])),
        ("test_generateOneBlock", json!(["ten"])),
        ("test_addLatency", json!([n.id])),
        ("test_addLatency", json!([n.id, -5.0])),
        ("test_addLatency", json!([n.id, 1e300])),
    ] {
        let e = call(local, m, Some(p)).unwrap_err();
        assert_eq!(e["code"], json!(-32602), "{m}: {e}");
    }

    // Envelope: parse errors, batches, notifications.
    let body = harness::post(local, "{not json").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], json!(-32700));
    assert_eq!(v["id"], json!(null));
    let body = harness::post(
        local,
        r#"[{"jsonrpc":"2.0","method":"test_sayHello","id":7},{"jsonrpc":"2.0","method":"x","id":8},{"jsonrpc":"2.0","method":"test_sayHello"}]"#,
    )
    .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v,
        json!([
            {"jsonrpc": "2.0", "result": "Hello, world", "id": 7},
            {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 8}
        ])
    );

    // The local port is on the node's loopback address only.
    assert!(local.ip().is_loopback());

    // The node key persists in the data dir: a restart keeps the node id.
    let id = n.id.clone();
    assert_eq!(call(local, "test_stop", None), Ok(json!(null)));
    assert_eq!(
        nodes[0].wait_exit(std::time::Duration::from_secs(5)).code(),
        Some(0)
    );
    assert!(
        root.path()
            .join("node0/blockchain_data/net_config/key")
            .exists()
    );
    let mut again = harness::spawn(root.path(), 0, &secrets, apis);
    let local = SocketAddr::from((again.ip, again.local_port));
    again.ready_on(local);
    assert_eq!(again.id, id);
}
