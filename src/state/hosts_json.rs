//! `hosts.json`: the original tool's inventory format, read and written byte-compatibly.
//!
//! A JSON array, indent 2, ASCII-only, of objects with exactly nine fields
//! (original-tool.md §1.8). cfxm writes it beside its own inventory so the original's scripts can
//! read cfxm's hosts, and reads it for `cloud: static` so cfxm can run on hosts listed by the
//! original tool (or by hand).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One host, with the original's field names and order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostRecord {
    /// Address cfxm (and the original) reach the host at: the public IP on a cloud.
    pub ip: IpAddr,
    /// Conflux nodes on this host.
    pub nodes_per_host: u32,
    pub ssh_user: String,
    /// Private key path, as written (relative paths are relative to the inventory file).
    pub ssh_key_path: String,
    /// `aliyun`, `aws`, `tencent`, `local` or anything else for hand-made inventories.
    pub provider: String,
    pub region: String,
    pub zone: String,
    pub instance_id: String,
    /// Address inside the VPC; peers in the same provider and region dial this one.
    pub private_ip: Option<IpAddr>,
}

/// Parses a `hosts.json` document.
pub fn parse(text: &str) -> Result<Vec<HostRecord>, serde_json::Error> {
    serde_json::from_str(text)
}

/// Renders hosts as the original writes them: indent 2, `ensure_ascii`, no trailing newline.
pub fn render(hosts: &[HostRecord]) -> String {
    let text = serde_json::to_string_pretty(hosts).expect("host records serialize");
    // serde_json leaves non-ASCII as UTF-8; Python's ensure_ascii escapes it.
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_the_original_format() {
        let text = r#"[
  {
    "ip": "47.236.1.2",
    "nodes_per_host": 1,
    "ssh_user": "root",
    "ssh_key_path": "./keys/ssh-key.pem",
    "provider": "aliyun",
    "region": "ap-southeast-1",
    "zone": "ap-southeast-1a",
    "instance_id": "i-t4n1",
    "private_ip": "10.0.0.7"
  }
]"#;
        let hosts = parse(text).unwrap();
        assert_eq!(hosts[0].nodes_per_host, 1);
        assert_eq!(render(&hosts), text);
    }

    #[test]
    fn extra_or_missing_fields_are_errors_as_in_the_original() {
        assert!(parse(r#"[{"ip":"1.2.3.4"}]"#).is_err());
        let extra = r#"[{"ip":"1.2.3.4","nodes_per_host":1,"ssh_user":"u","ssh_key_path":"k","provider":"p","region":"r","zone":"z","instance_id":"i","private_ip":null,"x":1}]"#;
        assert!(parse(extra).is_err());
    }

    #[test]
    fn non_ascii_is_escaped_like_python() {
        let mut h = parse(r#"[{"ip":"1.2.3.4","nodes_per_host":1,"ssh_user":"u","ssh_key_path":"k","provider":"p","region":"r","zone":"z","instance_id":"i","private_ip":null}]"#).unwrap();
        h[0].zone = "é☕".into();
        assert!(render(&h).contains(r#""zone": "\u00e9\u2615""#));
    }
}
