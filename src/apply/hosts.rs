//! Hosts placement (DESIGN §5, "Hosts are groups"): bring a region's hosts to the nodes it
//! wants, against real stock, and see every host to `Running` or replace it.
//!
//! - Candidates are (type, zone) in preference order, type-major as the original tool walks
//!   them (original-tool.md §1.4). Each create call asks for `min(ceil(need / nodes_per_host),
//!   max_per_call ≤ 100)` hosts with `MinAmount = 1`, tags in the call and a deterministic
//!   client token journaled before it.
//! - Every id a call returns is counted at once, partial fills included (the original dropped
//!   them). A partial fill or a no-capacity answer moves to the next candidate; throttling and
//!   server errors are retried in place by the policy, never burning a candidate (§5.6).
//! - What no candidate could place is the region's shortfall, for the backfill step.
//! - New hosts (and kept ones not yet running) are polled in batches of 100 until `Running`
//!   with their addresses. A host that is not `Running` within the boot timeout, stops, or runs
//!   without the public address it was given bandwidth for, is deleted and replaced; a bounded
//!   number of rounds, then the step fails naming them. Nothing is dropped silently (§5.1).
//! - `limits.max_hosts` and `limits.max_hourly_cost_usd` are checked before every create call
//!   against everything the apply runs ([`LimitGuard`]).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::mutation::{Mutations, StepError};
use crate::provider::resource::{
    HostStatus, HostsAttrs, Launch, LiveInstance, Provider, Tags, TypeChoice,
};
use crate::spec::{InstanceType, RegionId, ZoneId};

/// How long hosts may take, and how often they are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTiming {
    /// Between two status polls.
    pub poll: Duration,
    /// From create to `Running`; longer and the host is replaced.
    pub boot: Duration,
    /// From delete to gone.
    pub release: Duration,
    /// Rounds of replacing hosts that never ran, before the step fails.
    pub replace_rounds: u32,
}

impl Default for HostTiming {
    fn default() -> Self {
        HostTiming {
            poll: Duration::from_secs(3),
            boot: Duration::from_secs(10 * 60),
            release: Duration::from_secs(10 * 60),
            replace_rounds: 3,
        }
    }
}

/// The spec's limits against everything an apply runs: reserved before each create call.
#[derive(Debug)]
pub struct LimitGuard {
    max_hosts: Option<u64>,
    max_cost: Option<f64>,
    /// Hosts and hourly cost in use or reserved now.
    used: Mutex<(u64, f64)>,
}

impl LimitGuard {
    pub fn new(max_hosts: Option<u32>, max_cost: Option<f64>, hosts: u64, cost: f64) -> Self {
        LimitGuard {
            max_hosts: max_hosts.map(u64::from),
            max_cost,
            used: Mutex::new((hosts, cost)),
        }
    }

    /// Reserves up to `amount` hosts costing `price` each; returns how many fit the limits.
    pub fn reserve(&self, amount: u32, price: Option<f64>) -> u32 {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        let mut fit = u64::from(amount);
        if let Some(max) = self.max_hosts {
            fit = fit.min(max.saturating_sub(used.0));
        }
        if let (Some(max), Some(p)) = (self.max_cost, price)
            && p > 0.0
        {
            let room = ((max - used.1) / p).floor().max(0.0) as u64;
            fit = fit.min(room);
        }
        used.0 += fit;
        used.1 += price.unwrap_or(0.0) * fit as f64;
        u32::try_from(fit).unwrap_or(u32::MAX)
    }

    /// Gives back `count` hosts at `price` (not created, or deleted).
    pub fn release(&self, count: u32, price: Option<f64>) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.0 = used.0.saturating_sub(u64::from(count));
        used.1 = (used.1 - price.unwrap_or(0.0) * f64::from(count)).max(0.0);
    }
}

/// Where and how one region's hosts are created.
pub struct HostsTarget<'a> {
    pub provider: &'a dyn Provider,
    pub region: &'a RegionId,
    pub attrs: &'a HostsAttrs,
    /// The subnet id of each zone that has one.
    pub subnets: BTreeMap<ZoneId, String>,
    pub security_group: String,
    pub image_id: String,
    pub tags: Tags,
    /// Instance name of every host.
    pub name: String,
    pub timing: HostTiming,
    pub limits: &'a LimitGuard,
    /// Nodes this step reports progress against.
    pub progress_total: u64,
}

/// What placing and waiting did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostsRun {
    /// Hosts running, with their addresses.
    pub ready: Vec<LiveInstance>,
    /// Hosts created, per (type, zone).
    pub placed: BTreeMap<(InstanceType, ZoneId), u32>,
    /// Hosts deleted and replaced, with why.
    pub replaced: Vec<(String, String)>,
    /// Nodes no candidate could place.
    pub shortfall_nodes: u64,
}

impl HostsRun {
    pub fn ready_nodes(&self, attrs: &HostsAttrs) -> u64 {
        self.ready
            .iter()
            .map(|i| u64::from(attrs.nodes_per_host(&i.instance_type).unwrap_or(1)))
            .sum()
    }
}

struct Waiting {
    since: Instant,
    nodes: u32,
    price: Option<f64>,
}

impl HostsTarget<'_> {
    fn choice(&self, t: &InstanceType) -> Option<&TypeChoice> {
        self.attrs.types.iter().find(|c| &c.name == t)
    }

    /// Brings the region to `keep` plus `need_nodes` more nodes on running hosts. `generation`
    /// numbers create calls (their tokens), continuing across calls on one address.
    pub async fn converge(
        &self,
        m: &Mutations<'_>,
        keep: &[LiveInstance],
        need_nodes: u64,
        generation: &mut u32,
    ) -> Result<HostsRun, StepError> {
        let mut run = HostsRun::default();
        let mut waiting: BTreeMap<String, Waiting> = BTreeMap::new();
        let now = Instant::now();
        for k in keep {
            let c = self.choice(&k.instance_type);
            waiting.insert(
                k.id.clone(),
                Waiting {
                    since: now,
                    nodes: c.map_or(1, |c| c.nodes_per_host),
                    price: c.and_then(|c| c.hourly_cost_usd),
                },
            );
        }
        let mut need = need_nodes;
        let mut rounds = 0;
        loop {
            if need > 0 {
                let (created, short) = self.place(m, need, generation).await?;
                for (id, nodes, price, ty, zone) in created {
                    *run.placed.entry((ty, zone)).or_default() += 1;
                    waiting.insert(
                        id,
                        Waiting {
                            since: Instant::now(),
                            nodes,
                            price,
                        },
                    );
                }
                need = short;
            }
            let failed = self.wait(m, &mut waiting, &mut run).await?;
            if failed.is_empty() {
                break;
            }
            rounds += 1;
            let ids: Vec<String> = failed.iter().map(|(id, ..)| id.clone()).collect();
            self.provider.terminate(m, self.region, &ids).await?;
            for (id, why, w) in failed {
                self.limits.release(1, w.price);
                need += u64::from(w.nodes);
                run.replaced.push((id, why));
            }
            if rounds > self.timing.replace_rounds {
                let last: Vec<String> = run
                    .replaced
                    .iter()
                    .rev()
                    .take(3)
                    .map(|(id, why)| format!("{id}: {why}"))
                    .collect();
                return Err(StepError::failed(
                    format!(
                        "hosts in `{}` keep failing to run after {} rounds of replacement ({})",
                        self.region,
                        self.timing.replace_rounds,
                        last.join("; ")
                    ),
                    "the failed hosts were deleted; check the image and the zone, then run `cfxm apply` again",
                ));
            }
            m.progress(format!(
                "{} host(s) never ran and were deleted; placing replacements",
                ids.len()
            ));
        }
        run.shortfall_nodes = need;
        Ok(run)
    }

    /// Places `need` nodes over the candidates; returns what was created and the nodes left.
    #[allow(clippy::type_complexity)]
    async fn place(
        &self,
        m: &Mutations<'_>,
        mut need: u64,
        generation: &mut u32,
    ) -> Result<(Vec<(String, u32, Option<f64>, InstanceType, ZoneId)>, u64), StepError> {
        let mut created = Vec::new();
        for t in &self.attrs.types {
            for zone in &self.attrs.zones {
                let Some(subnet) = self.subnets.get(zone) else {
                    continue;
                };
                let nph = u64::from(t.nodes_per_host.max(1));
                loop {
                    if need == 0 {
                        return Ok((created, 0));
                    }
                    let wanted = need
                        .div_ceil(nph)
                        .min(u64::from(self.attrs.max_per_call.clamp(1, 100)));
                    let wanted = u32::try_from(wanted).expect("at most 100");
                    let amount = self.limits.reserve(wanted, t.hourly_cost_usd);
                    if amount == 0 {
                        return Err(StepError::failed(
                            format!(
                                "`limits` stop `{}` at its hosts so far: {} more node(s) would pass `limits.max_hosts` or `limits.max_hourly_cost_usd`",
                                self.region, need
                            ),
                            "raise the limits in the spec, or ask for fewer nodes; the hosts created so far are kept",
                        ));
                    }
                    let batch = Launch {
                        region: self.region.clone(),
                        zone: zone.clone(),
                        subnet_id: subnet.clone(),
                        security_group_id: self.security_group.clone(),
                        image_id: self.image_id.clone(),
                        key_pair: self.attrs.key_pair.clone(),
                        instance_type: t.name.clone(),
                        amount,
                        min_amount: 1,
                        settings: self.attrs.settings.clone(),
                        name: self.name.clone(),
                        tags: self.tags.clone(),
                    };
                    let token = m.token("RunInstances", *generation);
                    *generation += 1;
                    match self.provider.launch(m, &batch, token).await {
                        Ok(ids) => {
                            let got = u32::try_from(ids.len()).unwrap_or(u32::MAX).min(amount);
                            self.limits.release(amount - got, t.hourly_cost_usd);
                            need = need.saturating_sub(u64::from(got) * nph);
                            for id in ids {
                                created.push((
                                    id,
                                    t.nodes_per_host,
                                    t.hourly_cost_usd,
                                    t.name.clone(),
                                    zone.clone(),
                                ));
                            }
                            m.progress(format!(
                                "{} × {} in {zone}: {got} of {amount} created",
                                got, t.name
                            ));
                            if got < amount {
                                // A partial fill: this (type, zone) has no more stock.
                                break;
                            }
                        }
                        Err(e) if e.is_replan() => {
                            self.limits.release(amount, t.hourly_cost_usd);
                            m.progress(format!(
                                "{} in {zone}: no capacity, trying the next",
                                t.name
                            ));
                            break;
                        }
                        Err(e) => {
                            self.limits.release(amount, t.hourly_cost_usd);
                            return Err(e);
                        }
                    }
                }
            }
        }
        Ok((created, need))
    }

    /// Polls `waiting` until each host runs (moved to `run.ready`) or fails (returned).
    async fn wait(
        &self,
        m: &Mutations<'_>,
        waiting: &mut BTreeMap<String, Waiting>,
        run: &mut HostsRun,
    ) -> Result<Vec<(String, String, Waiting)>, StepError> {
        let mut failed = Vec::new();
        let public = self.attrs.settings.public_ip;
        loop {
            if waiting.is_empty() {
                return Ok(failed);
            }
            let ids: Vec<String> = waiting.keys().cloned().collect();
            let statuses: BTreeMap<String, HostStatus> = self
                .provider
                .instance_status(self.region, &ids)
                .await
                .map_err(read_error)?
                .into_iter()
                .collect();
            let mut running = Vec::new();
            for id in &ids {
                let w = &waiting[id];
                let late = w.since.elapsed() > self.timing.boot;
                let why = match statuses.get(id) {
                    Some(HostStatus::Running) => {
                        running.push(id.clone());
                        None
                    }
                    Some(HostStatus::Pending | HostStatus::Starting) | None if late => {
                        Some(format!(
                            "not Running {} after it was created",
                            humantime::format_duration(self.timing.boot)
                        ))
                    }
                    Some(HostStatus::Pending | HostStatus::Starting) | None => None,
                    Some(other) => Some(format!("it is {other}")),
                };
                if let Some(why) = why {
                    let w = waiting.remove(id).expect("listed");
                    failed.push((id.clone(), why, w));
                }
            }
            if !running.is_empty() {
                let described = self
                    .provider
                    .describe_instances(self.region, &running)
                    .await
                    .map_err(read_error)?;
                for i in described {
                    let Some(w) = waiting.remove(&i.id) else {
                        continue;
                    };
                    if public && i.public_ip.is_none() {
                        failed.push((i.id.clone(), "Running without a public address".into(), w));
                        continue;
                    }
                    run.ready.push(i);
                }
            }
            if let Some(step) = m.step {
                step.progress_count(
                    run.ready_nodes(self.attrs),
                    self.progress_total,
                    format!("nodes on running hosts in {}", self.region),
                );
            }
            if waiting.is_empty() {
                return Ok(failed);
            }
            m.sleep(self.timing.poll).await?;
        }
    }
}

/// Deletes `ids` and waits until they are gone (bounded by `timing.release`).
pub async fn remove(
    provider: &dyn Provider,
    m: &Mutations<'_>,
    region: &RegionId,
    ids: &[String],
    timing: &HostTiming,
) -> Result<(), StepError> {
    if ids.is_empty() {
        return Ok(());
    }
    provider.terminate(m, region, ids).await?;
    wait_gone(provider, m, region, ids, timing).await
}

/// Waits until none of `ids` exists any more.
pub async fn wait_gone(
    provider: &dyn Provider,
    m: &Mutations<'_>,
    region: &RegionId,
    ids: &[String],
    timing: &HostTiming,
) -> Result<(), StepError> {
    let started = Instant::now();
    loop {
        let left = provider
            .instance_status(region, ids)
            .await
            .map_err(read_error)?;
        if left.is_empty() {
            return Ok(());
        }
        if let Some(step) = m.step {
            step.progress_count(
                (ids.len() - left.len()) as u64,
                ids.len() as u64,
                format!("hosts released in {region}"),
            );
        }
        if started.elapsed() > timing.release {
            return Err(StepError::failed(
                format!(
                    "{} host(s) in `{region}` are still not released after {}: {}",
                    left.len(),
                    humantime::format_duration(timing.release),
                    left.iter()
                        .take(5)
                        .map(|(id, s)| format!("{id} ({s})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "run the same command again; it continues with what is left",
            ));
        }
        m.sleep(timing.poll).await?;
    }
}

fn read_error(e: crate::provider::resource::ProviderError) -> StepError {
    StepError::from(super::retry::Stopped {
        error: e,
        decision: super::retry::Decision::Stop(super::retry::StopReason::Fatal),
        attempts: 1,
        elapsed: Duration::ZERO,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_admit_what_fits_and_give_back_what_was_not_used() {
        let g = LimitGuard::new(Some(10), Some(5.0), 4, 1.0);
        // 6 hosts left by count, (5 - 1) / 0.5 = 8 by cost.
        assert_eq!(g.reserve(100, Some(0.5)), 6);
        assert_eq!(g.reserve(1, Some(0.5)), 0);
        g.release(2, Some(0.5));
        // Cost: 1 + 4 × 0.5 = 3 used, 2 left: one host at 2.0.
        assert_eq!(g.reserve(5, Some(2.0)), 1);
        assert_eq!(g.reserve(5, Some(1.0)), 0);
        g.release(1, Some(2.0));
        // Unpriced hosts count against `max_hosts` only.
        assert_eq!(g.reserve(5, None), 2);
        let open = LimitGuard::new(None, None, 0, 0.0);
        assert_eq!(open.reserve(100, None), 100);
    }
}
