//! `image`: the node image present on every cloud host, tagged `conflux-node:latest`.
//!
//! Local hosts run devnode and need no image: the stage does nothing for them. Cloud hosts
//! get the spec's `node.image` one of two ways ([`ImageFanout`]):
//!
//! - `registry` (default): every host pulls from the image's registry;
//! - `zone-tree`, the original's fan-out (original-tool.md §2.2): hosts of a zone sorted by
//!   private IP form a binary heap; the root pulls from the registry and serves the image from a
//!   `registry:2` on port 5000, and each other host pulls from its parent (and serves its own
//!   children), level by level. Pulling from a peer's registry needs it in the docker daemon's
//!   `insecure-registries`: cfxm writes `/etc/docker/daemon.json` only when there is none (and
//!   then restarts docker), never overwrites one (original-tool.md §5.3), and falls back to the
//!   registry for a host it cannot configure.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::env::{ImageFanout, InputContext, StageEnv, StageHost};
use super::nodes::hosts_part;
use super::plan::Inputs;
use super::progress::Counter;
use super::runtime::LOCAL_IMAGE_TAG;
use super::{Failure, Stage, StageError, StageId, bounded};
use crate::apply::StepContext;
use crate::ssh::hosts::Host;
use crate::ssh::{BoxFuture, shell_quote};

/// The port of each zone's image registry.
pub const REGISTRY_PORT: u16 = 5000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageOutput {
    /// Hosts that have the image.
    pub pulled: usize,
    /// Local hosts, which need none.
    pub local: usize,
    /// Hosts of a zone tree that fell back to the registry.
    #[serde(default)]
    pub fell_back: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// `image`: see the module docs.
pub struct Image;

impl Stage for Image {
    fn id(&self) -> StageId {
        StageId::Image
    }

    fn inputs(&self, cx: &InputContext<'_>) -> Result<Inputs, StageError> {
        let cloud: Vec<Host> = cx
            .hosts()?
            .iter()
            .filter(|h| !h.is_local())
            .cloned()
            .collect();
        let mut inputs = Inputs::new();
        if !cloud.is_empty() {
            inputs = inputs
                .with("node.image", &cx.spec.node.image)
                .with("fanout", cx.options.image_fanout);
        }
        Ok(hosts_part(inputs, &cloud))
    }

    fn run<'a>(
        &'a self,
        env: &'a StageEnv,
        step: &'a StepContext,
    ) -> BoxFuture<'a, Result<Value, Failure>> {
        Box::pin(async move {
            let cloud: Vec<&StageHost> = env.hosts.iter().filter(|h| !h.host.is_local()).collect();
            let mut out = ImageOutput {
                local: env.hosts.len() - cloud.len(),
                ..ImageOutput::default()
            };
            if cloud.is_empty() {
                step.progress("all hosts are local: devnode needs no image");
                return Ok(serde_json::to_value(&out).expect("serializes"));
            }
            let counter = Counter::new(step, "images pulled", cloud.len() as u64);
            let image = env.spec.node.image.as_str();
            let levels: Vec<Vec<(&StageHost, Option<IpAddr>)>> = match env.options.image_fanout {
                ImageFanout::Registry => vec![cloud.iter().map(|h| (*h, None)).collect()],
                ImageFanout::ZoneTree => zone_tree_levels(&cloud),
            };
            // Hosts whose own pull failed: their children go to the registry instead.
            let mut broken: Vec<IpAddr> = Vec::new();
            for level in levels {
                let mut pulls = Vec::new();
                for (h, parent) in level {
                    let parent = parent.filter(|p| !broken.contains(p));
                    let serve = env.options.image_fanout == ImageFanout::ZoneTree;
                    let counter = &counter;
                    pulls.push(async move {
                        let mut fell_back = false;
                        let mut r = Err(String::new());
                        if let Some(p) = parent {
                            r = pull(env, h, &from_peer_command(p, sudo(h))).await;
                            fell_back = r.is_err();
                        }
                        if parent.is_none() || fell_back {
                            r = pull(env, h, &from_registry_command(image, sudo(h))).await;
                        }
                        if r.is_ok() && serve {
                            r = pull(env, h, &serve_command(sudo(h))).await;
                        }
                        counter.tick(r.is_ok());
                        (h, fell_back, r)
                    });
                }
                for (h, fell_back, r) in bounded(pulls, env.options.host_parallelism).await {
                    if fell_back {
                        out.fell_back.push(h.host.label.clone());
                    }
                    match r {
                        Ok(()) => out.pulled += 1,
                        Err(e) => {
                            broken.push(private_or_public(&h.host));
                            out.failed.push((h.host.label.clone(), e));
                        }
                    }
                }
            }
            out.failed.sort();
            out.fell_back.sort();
            let value = serde_json::to_value(&out).expect("serializes");
            if let Some((host, error)) = out.failed.first() {
                return Err(Failure::with_outputs(
                    StageError::OverBudget {
                        stage: StageId::Image,
                        what: "hosts",
                        failed: out.failed.len(),
                        total: cloud.len(),
                        allowed: 0,
                        first: format!("{host}: {error}"),
                    },
                    value,
                ));
            }
            Ok(value)
        })
    }
}

fn sudo(h: &StageHost) -> bool {
    h.host.record.ssh_user != "root"
}

async fn pull(env: &StageEnv, h: &StageHost, command: &str) -> Result<(), String> {
    h.transport
        .run(command, Some(env.options.image_pull_timeout))
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

fn private_or_public(h: &Host) -> IpAddr {
    h.record.private_ip.unwrap_or(h.record.ip)
}

/// `docker pull` from the image's registry, tagged as the nodes run it.
pub fn from_registry_command(image: &str, sudo: bool) -> String {
    let s = if sudo { "sudo " } else { "" };
    let image = shell_quote(image);
    format!("{s}docker pull -q {image} >/dev/null && {s}docker tag {image} {LOCAL_IMAGE_TAG}")
}

/// Pull from the parent's registry; first make sure docker trusts it, writing
/// `/etc/docker/daemon.json` only if there is none.
pub fn from_peer_command(parent: IpAddr, sudo: bool) -> String {
    let s = if sudo { "sudo " } else { "" };
    let reg = format!("{parent}:{REGISTRY_PORT}");
    format!(
        "f=/etc/docker/daemon.json; \
         if ! {s}grep -qF '\"{reg}\"' \"$f\" 2>/dev/null; then \
         if {s}test -e \"$f\"; then echo \"$f exists and does not trust {reg}; cfxm does not overwrite it\" >&2; exit 5; fi; \
         printf '%s\\n' '{{\"insecure-registries\": [\"{reg}\"]}}' | {s}tee \"$f\" >/dev/null && {s}systemctl restart docker; fi; \
         {s}docker pull -q {reg}/conflux-node:base >/dev/null && {s}docker tag {reg}/conflux-node:base {LOCAL_IMAGE_TAG}"
    )
}

/// Serve the image to this host's children: a `registry:2` on port 5000 holding it as
/// `conflux-node:base`.
pub fn serve_command(sudo: bool) -> String {
    let s = if sudo { "sudo " } else { "" };
    format!(
        "{s}docker inspect conflux-registry >/dev/null 2>&1 || \
         {s}docker run -d --restart=always --name conflux-registry -p {REGISTRY_PORT}:5000 registry:2 >/dev/null; \
         n=0; until curl -fs http://localhost:{REGISTRY_PORT}/v2/ >/dev/null; do n=$((n+1)); [ $n -lt 40 ] || exit 6; sleep 3; done; \
         {s}docker tag {LOCAL_IMAGE_TAG} localhost:{REGISTRY_PORT}/conflux-node:base && \
         {s}docker push -q localhost:{REGISTRY_PORT}/conflux-node:base >/dev/null"
    )
}

/// The zone trees as levels: level 0 holds each zone's root (no parent), level k the hosts at
/// depth k with their parent's private address. Hosts of a zone are sorted by private IP and
/// form a binary heap: host i's parent is ⌊(i−1)/2⌋.
pub fn zone_tree_levels<'h>(hosts: &[&'h StageHost]) -> Vec<Vec<(&'h StageHost, Option<IpAddr>)>> {
    let mut zones: BTreeMap<(&str, &str), Vec<&'h StageHost>> = BTreeMap::new();
    for h in hosts {
        zones
            .entry((h.host.record.region.as_str(), h.host.record.zone.as_str()))
            .or_default()
            .push(h);
    }
    let mut levels: Vec<Vec<(&'h StageHost, Option<IpAddr>)>> = Vec::new();
    for members in zones.values_mut() {
        members.sort_by_key(|h| private_or_public(&h.host));
        for (i, h) in members.iter().enumerate() {
            let depth = (usize::BITS - (i + 1).leading_zeros() - 1) as usize;
            let parent = (i > 0).then(|| private_or_public(&members[(i - 1) / 2].host));
            if levels.len() <= depth {
                levels.resize_with(depth + 1, Vec::new);
            }
            levels[depth].push((*h, parent));
        }
    }
    levels
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ssh::LocalTransport;
    use crate::state::hosts_json::HostRecord;

    fn host(zone: &str, private: &str) -> StageHost {
        StageHost {
            host: Host {
                label: format!("i-{private}"),
                record: HostRecord {
                    ip: "47.0.0.1".parse().unwrap(),
                    nodes_per_host: 1,
                    ssh_user: "ubuntu".into(),
                    ssh_key_path: "k".into(),
                    provider: "aliyun".into(),
                    region: "r1".into(),
                    zone: zone.into(),
                    instance_id: format!("i-{private}"),
                    private_ip: Some(private.parse().unwrap()),
                },
                origin: crate::ssh::hosts::HostOrigin::Managed {
                    inventory: "/h.json".into(),
                },
                ssh_port: 22,
                key: "/k".into(),
            },
            transport: Arc::new(LocalTransport::new("x", "/nonexistent")),
        }
    }

    #[test]
    fn zone_trees_are_binary_heaps_by_private_ip() {
        let hosts: Vec<StageHost> = ["10.0.0.5", "10.0.0.1", "10.0.0.3", "10.0.0.2", "10.0.0.4"]
            .iter()
            .map(|ip| host("z1", ip))
            .chain([host("z2", "10.1.0.9")])
            .collect();
        let refs: Vec<&StageHost> = hosts.iter().collect();
        let levels = zone_tree_levels(&refs);
        let show: Vec<Vec<String>> = levels
            .iter()
            .map(|l| {
                l.iter()
                    .map(|(h, p)| {
                        format!(
                            "{}<{}",
                            h.host.label,
                            p.map(|p| p.to_string()).unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            show,
            [
                vec!["i-10.0.0.1<", "i-10.1.0.9<"],
                vec!["i-10.0.0.2<10.0.0.1", "i-10.0.0.3<10.0.0.1"],
                vec!["i-10.0.0.4<10.0.0.2", "i-10.0.0.5<10.0.0.2"],
            ]
        );
    }

    #[test]
    fn pull_commands_tag_the_image_and_never_overwrite_daemon_json() {
        assert_eq!(
            from_registry_command("lylcx2007/conflux-node:dev", true),
            "sudo docker pull -q lylcx2007/conflux-node:dev >/dev/null && \
             sudo docker tag lylcx2007/conflux-node:dev conflux-node:latest"
        );
        let c = from_peer_command("10.0.0.1".parse().unwrap(), false);
        assert!(
            c.contains("does not trust 10.0.0.1:5000; cfxm does not overwrite it"),
            "{c}"
        );
        assert!(
            c.contains("docker pull -q 10.0.0.1:5000/conflux-node:base"),
            "{c}"
        );
        assert!(serve_command(false).contains("registry:2"));
    }
}
