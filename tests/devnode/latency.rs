//! Latency injected with `test_addLatency` on one link shows in the receiver's log times, and
//! only on that link and direction; `test_stop` and SIGINT stop nodes cleanly.

use std::time::Duration;

use serde_json::json;

use super::harness;
use super::logcheck;

#[test]
fn injected_latency_delays_one_link_in_one_direction() {
    let root = tempfile::tempdir().unwrap();
    let secrets = harness::write_secrets(root.path(), 100);
    // A line a — b — c, so a block has exactly one path to each node.
    let mut nodes = harness::start(root.path(), 3, &secrets, "");
    harness::connect(&nodes, 0, 1);
    harness::connect(&nodes, 1, 2);
    harness::wait_peers(&nodes[1], &[&nodes[0].id, &nodes[2].id]);
    harness::wait_peers(&nodes[0], &[&nodes[1].id]);
    harness::wait_peers(&nodes[2], &[&nodes[1].id]);

    // a delays everything it sends to b by 400 ms.
    nodes[0].ok("test_addLatency", Some(json!([nodes[1].id, 400.0])));

    let from_a = nodes[0].ok("test_generateOneBlock", Some(json!([1000, 460_800])));
    harness::wait_converged(&nodes, 2, Duration::from_secs(10));
    let from_c = nodes[2].ok("test_generateOneBlock", Some(json!([1000, 460_800])));
    harness::wait_converged(&nodes, 3, Duration::from_secs(10));
    let from_b = nodes[1].ok("test_generateOneBlock", Some(json!([1000, 460_800])));
    harness::wait_converged(&nodes, 4, Duration::from_secs(10));

    // Stop b through RPC, a and c with SIGINT.
    assert_eq!(nodes[1].ok("test_stop", None), json!(null));
    nodes[0].signal("INT");
    nodes[2].signal("INT");
    for n in &mut nodes {
        assert_eq!(n.wait_exit(Duration::from_secs(5)).code(), Some(0));
    }

    let logs: Vec<_> = nodes.iter().map(|n| logcheck::index(&n.log())).collect();
    let ms = |from: usize, to: usize, hash: &serde_json::Value| {
        let h = hash.as_str().unwrap();
        let sent = logs[from].inserted[h][0];
        let got = logs[to].received[h][0];
        (got - sent).num_milliseconds()
    };
    // a → b carries the delay, and so does the relay b → c behind it.
    let ab = ms(0, 1, &from_a);
    assert!((400..900).contains(&ab), "a → b took {ab} ms");
    let ac = ms(0, 2, &from_a);
    assert!(ac >= 400 && ac < ab + 400, "a → b → c took {ac} ms");
    // c → b and b → a are not delayed.
    let cb = ms(2, 1, &from_c);
    assert!(cb < 250, "c → b took {cb} ms");
    let ba = ms(1, 0, &from_b);
    assert!(ba < 250, "b → a took {ba} ms");
}
