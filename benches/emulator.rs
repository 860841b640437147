//! Emulator throughput, so scale work knows whether the emulator is the bottleneck:
//! RunInstances (Amount=100 and Amount=1) and DescribeInstances pages of 100 over a
//! 10,000-instance region, sequential and with 16 concurrent callers, plus the original tool's
//! describe poll (`PageSize=100` by an `InstanceIds` JSON array of 100), through cfxm's own
//! client (V3 signing, one keep-alive connection pool) against an in-process emulator over
//! loopback. Ends with how many TCP connections all of that took (keep-alive) and how many had
//! `TCP_NODELAY` on.
//!
//! Run: `cargo bench --bench emulator`. Prints requests/s and median / p99 latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfxm::emulator::{Emulator, EmulatorConfig};
use cfxm::provider::aliyun::{
    Api, Client, ClientConfig, CreateSecurityGroupRequest, CreateVSwitchRequest, CreateVpcRequest,
    Endpoints, ImageQuery, InstanceQuery, Params, RunInstancesRequest, Tag,
};
use cfxm::spec::RegionId;

const REGION: &str = "ap-southeast-1";
const ZONE: &str = "ap-southeast-1a";

struct Stats {
    name: String,
    requests: usize,
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn print(mut self) {
        self.latencies.sort();
        let pct = |p: f64| self.latencies[((self.latencies.len() - 1) as f64 * p) as usize];
        println!(
            "{:<52} {:>6} req in {:>7.2} s = {:>8.0} req/s   median {:>7.2} ms   p99 {:>7.2} ms",
            self.name,
            self.requests,
            self.wall.as_secs_f64(),
            self.requests as f64 / self.wall.as_secs_f64(),
            pct(0.5).as_secs_f64() * 1000.0,
            pct(0.99).as_secs_f64() * 1000.0,
        );
    }
}

/// Runs `total` calls of `f` with `concurrency` callers; collects per-call latency.
async fn measure<F, Fut>(name: &str, total: usize, concurrency: usize, f: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let f = f.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                f(i).await;
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    Stats {
        name: name.to_string(),
        requests: total,
        wall: started.elapsed(),
        latencies,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run());
}

async fn run() {
    let emu = Emulator::start(EmulatorConfig {
        seed: Some(1),
        call_log_capacity: 1_000_000,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(ClientConfig::new(
        emu.credentials(),
        Endpoints::single(&emu.endpoint_url(), "the benchmark").unwrap(),
    ))
    .unwrap();
    let region = RegionId::new(REGION);
    let vpc = client
        .create_vpc(
            &region,
            &CreateVpcRequest {
                cidr_block: "10.0.0.0/8".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .vpc_id;
    let vswitch = client
        .create_vswitch(
            &region,
            &CreateVSwitchRequest {
                vpc_id: vpc.clone(),
                zone_id: ZONE.into(),
                cidr_block: "10.0.0.0/16".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let sg = client
        .create_security_group(
            &region,
            &CreateSecurityGroupRequest {
                vpc_id: vpc,
                name: "bench".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let image = client
        .describe_images(
            &region,
            &ImageQuery {
                owner_alias: Some("self".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .remove(0)
        .image_id;
    emu.set_stock(ZONE, "ecs.g8i.2xlarge", Some(50_000))
        .unwrap();
    let tags = vec![
        Tag::new("conflux-massive-test", "true"),
        Tag::new("user", "bench"),
        Tag::new("cfxm-spec", "bench"),
    ];
    let request = Arc::new(RunInstancesRequest {
        zone_id: Some(ZONE.into()),
        image_id: image,
        instance_type: "ecs.g8i.2xlarge".into(),
        security_group_id: sg,
        vswitch_id: vswitch,
        amount: 100,
        min_amount: Some(1),
        tags,
        internet_max_bandwidth_out: 100,
        ..Default::default()
    });

    println!(
        "cfxm emulator benchmark (in-process server, cfxm client, V3 signing, 2 worker threads)"
    );
    let (c, r, q) = (client.clone(), region.clone(), request.clone());
    measure(
        "RunInstances Amount=100, sequential (10,000 hosts)",
        100,
        1,
        move |_| {
            let (c, r, q) = (c.clone(), r.clone(), q.clone());
            async move {
                assert_eq!(
                    c.run_instances(&r, &q).await.unwrap().instance_ids.len(),
                    100
                );
            }
        },
    )
    .await
    .print();
    let one = Arc::new(RunInstancesRequest {
        amount: 1,
        ..(*request).clone()
    });
    let (c, r, q) = (client.clone(), region.clone(), one.clone());
    measure(
        "RunInstances Amount=1, 16 concurrent (1,000 hosts)",
        1_000,
        16,
        move |_| {
            let (c, r, q) = (c.clone(), r.clone(), q.clone());
            async move {
                c.run_instances(&r, &q).await.unwrap();
            }
        },
    )
    .await
    .print();

    // DescribeInstances pages of 100 over 11,000 instances, by tag (the cap applies: 1,000
    // rows) and untagged with NextToken (the whole region).
    let first = client
        .describe_instances_page(&region, &InstanceQuery::default(), &[], 100, "")
        .await
        .unwrap();
    let token = Arc::new(first.next_token.unwrap());
    for (name, concurrency, total) in [
        (
            "DescribeInstances page of 100 (of 11,000), sequential",
            1,
            300,
        ),
        (
            "DescribeInstances page of 100 (of 11,000), 16 concurrent",
            16,
            1_000,
        ),
    ] {
        let since = emu.calls().last().map_or(0, |c| c.seq);
        let (c, r, t) = (client.clone(), region.clone(), token.clone());
        measure(name, total, concurrency, move |_| {
            let (c, r, t) = (c.clone(), r.clone(), t.clone());
            async move {
                let page = c
                    .describe_instances_page(&r, &InstanceQuery::default(), &[], 100, &t)
                    .await
                    .unwrap();
                assert_eq!(page.instances.len(), 100);
            }
        })
        .await
        .print();
        // The emulator's own share, from request in to response out, per its call log.
        let mut inside: Vec<f64> = emu
            .calls_since(since)
            .iter()
            .map(|c| c.latency_ms)
            .collect();
        inside.sort_by(f64::total_cmp);
        println!(
            "{:<52} median {:.2} ms of that inside the emulator's handler",
            "",
            inside[inside.len() / 2]
        );
    }
    // The original tool's poll: 100 ids as a JSON array, PageSize=100 (page-number mode).
    let ids: Vec<String> = client
        .describe_instances_page(&region, &InstanceQuery::default(), &[], 100, &token)
        .await
        .unwrap()
        .instances
        .into_iter()
        .map(|i| i.instance_id)
        .collect();
    let ids = Arc::new(serde_json::to_string(&ids).unwrap());
    let since = emu.calls().last().map_or(0, |c| c.seq);
    let (c, r, i) = (client.clone(), region.clone(), ids.clone());
    measure(
        "DescribeInstances 100 InstanceIds (original's poll), seq.",
        300,
        1,
        move |_| {
            let (c, r, i) = (c.clone(), r.clone(), i.clone());
            async move {
                let page: serde_json::Value = c
                    .call(
                        Api::Ecs,
                        "DescribeInstances",
                        Some(&r),
                        Params::new()
                            .set("PageSize", 100)
                            .set("InstanceIds", i.as_str()),
                    )
                    .await
                    .unwrap();
                assert_eq!(page["TotalCount"], 100);
            }
        },
    )
    .await
    .print();
    let mut inside: Vec<f64> = emu
        .calls_since(since)
        .iter()
        .map(|c| c.latency_ms)
        .collect();
    inside.sort_by(f64::total_cmp);
    println!(
        "{:<52} median {:.2} ms of that inside the emulator's handler",
        "",
        inside[inside.len() / 2]
    );
    let started = Instant::now();
    let all = client
        .describe_instances(&region, &InstanceQuery::default())
        .await
        .unwrap();
    println!(
        "{:<52} {:>6} instances in {:.2} s ({} pages)",
        "DescribeInstances, the whole region via NextToken",
        all.len(),
        started.elapsed().as_secs_f64(),
        all.len().div_ceil(100)
    );
    let started = Instant::now();
    let ids: Vec<String> = all.iter().map(|i| i.instance_id.clone()).collect();
    let statuses = client
        .describe_instance_status(&region, &ids)
        .await
        .unwrap();
    println!(
        "{:<52} {:>6} statuses in {:.2} s ({} calls)",
        "DescribeInstanceStatus, 100 ids × 50 per page",
        statuses.len(),
        started.elapsed().as_secs_f64(),
        ids.len().div_ceil(100) * 2
    );
    let conns = emu.connections();
    println!(
        "keep-alive: {} API requests over {} TCP connections ({} with TCP_NODELAY)",
        emu.calls().len(),
        conns.accepted,
        conns.no_delay
    );
    emu.shutdown().await;
}
