//! The stages area: the generated node config against the original's keys and formulas
//! (snapshots), and the experiment end to end over local host slots running real devnode
//! processes of the built binary; and the bound on rounds of replacing hosts that do not
//! answer.

mod config;
mod local;
mod rounds;

/// A spec on the local cloud: `regions` × `nodes` nodes, `nodes_per_host` per host.
pub fn spec_text(regions: &[(&str, u32)], nodes_per_host: u32, extra: &str) -> String {
    let regions: String = regions
        .iter()
        .map(|(r, n)| format!("      - {{ name: {r}, nodes: {n} }}\n"))
        .collect();
    format!(
        "name: stages-test\nowner: tester\ncloud:\n  local:\n    instance_types:\n      \
         - {{ name: ecs.g8i.2xlarge, nodes_per_host: {nodes_per_host} }}\n    regions:\n{regions}{extra}"
    )
}

pub fn load(text: &str, dir: &std::path::Path) -> cfxm::spec::Spec {
    cfxm::spec::load_str(text, "spec.yaml", &dir.join("spec.yaml"))
        .unwrap_or_else(|e| panic!("{e:?}"))
}
