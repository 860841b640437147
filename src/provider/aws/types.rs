//! Typed EC2 names (ids), tags, filters and the XML list shapes shared by every action.
//!
//! EC2's Query protocol answers XML where lists are `<fooSet><item>…</item></fooSet>` and tags
//! are `<tagSet><item><key/><value/></item></tagSet>`; the helpers here turn those into `Vec`s
//! and [`Tags`] maps during deserialization, so action code sees plain Rust values.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::client::Params;

use crate::spec::name_type as aws_id;

aws_id!(
    /// `vpc-…`
    VpcId
);
aws_id!(
    /// `subnet-…`
    SubnetId
);
aws_id!(
    /// `sg-…`
    SecurityGroupId
);
aws_id!(
    /// `igw-…`
    InternetGatewayId
);
aws_id!(
    /// `rtb-…`
    RouteTableId
);
aws_id!(
    /// `i-…`
    InstanceId
);
aws_id!(
    /// `ami-…`
    ImageId
);
aws_id!(
    /// A key pair's name (its identity in RunInstances and DeleteKeyPair).
    KeyName
);
aws_id!(
    /// `key-…`
    KeyPairId
);
aws_id!(
    /// RunInstances' idempotency token (≤ 64 ASCII characters).
    ClientToken
);

/// Tags of a resource, key → value, in a stable order.
pub type Tags = BTreeMap<String, String>;

/// One Describe filter: `name` matches any of `values`; several filters must all match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

impl Filter {
    pub fn new<S: Into<String>>(
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        Filter {
            name: name.into(),
            values: values.into_iter().map(Into::into).collect(),
        }
    }

    /// Resources whose tag `key` is exactly `value`.
    pub fn tag(key: &str, value: &str) -> Self {
        Filter::new(format!("tag:{key}"), [value])
    }

    /// One exact-tag filter per entry: resources carrying all of `tags`.
    pub fn tags(tags: &Tags) -> Vec<Filter> {
        tags.iter().map(|(k, v)| Filter::tag(k, v)).collect()
    }
}

/// The resource types a create call tags (`TagSpecification.N.ResourceType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagTarget {
    Vpc,
    InternetGateway,
    Subnet,
    SecurityGroup,
    KeyPair,
    Instance,
    Volume,
}

impl TagTarget {
    fn as_str(self) -> &'static str {
        match self {
            TagTarget::Vpc => "vpc",
            TagTarget::InternetGateway => "internet-gateway",
            TagTarget::Subnet => "subnet",
            TagTarget::SecurityGroup => "security-group",
            TagTarget::KeyPair => "key-pair",
            TagTarget::Instance => "instance",
            TagTarget::Volume => "volume",
        }
    }
}

impl Params {
    /// `Filter.N.Name` / `Filter.N.Value.M`.
    pub(crate) fn filters(&mut self, filters: &[Filter]) -> &mut Self {
        for (i, f) in filters.iter().enumerate() {
            let n = i + 1;
            self.set(format!("Filter.{n}.Name"), &f.name);
            self.list(&format!("Filter.{n}.Value"), &f.values);
        }
        self
    }

    /// `TagSpecification.N.ResourceType` / `.Tag.M.Key` / `.Tag.M.Value`: tags applied by the
    /// create call itself, so nothing exists untagged even for a moment.
    pub(crate) fn tag_specs(&mut self, targets: &[TagTarget], tags: &Tags) -> &mut Self {
        if tags.is_empty() {
            return self;
        }
        for (i, target) in targets.iter().enumerate() {
            let n = i + 1;
            self.set(
                format!("TagSpecification.{n}.ResourceType"),
                target.as_str(),
            );
            for (j, (k, v)) in tags.iter().enumerate() {
                let m = j + 1;
                self.set(format!("TagSpecification.{n}.Tag.{m}.Key"), k);
                self.set(format!("TagSpecification.{n}.Tag.{m}.Value"), v);
            }
        }
        self
    }
}

/// `<set><item>…</item>…</set>` → `Vec`.
#[derive(Deserialize)]
struct Items<T> {
    #[serde(rename = "item", default = "Vec::new")]
    item: Vec<T>,
}

/// Deserializes an EC2 list (`<fooSet><item/>…</fooSet>`) into its items; use with
/// `#[serde(default, deserialize_with = "items")]`.
pub(crate) fn items<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Items::<T>::deserialize(d)?.item)
}

#[derive(Deserialize)]
struct TagItem {
    key: String,
    #[serde(default)]
    value: String,
}

/// Deserializes a `<tagSet>` into [`Tags`]; use with `#[serde(default, deserialize_with = "tag_set")]`.
pub(crate) fn tag_set<'de, D: Deserializer<'de>>(d: D) -> Result<Tags, D::Error> {
    Ok(items::<D, TagItem>(d)?
        .into_iter()
        .map(|t| (t.key, t.value))
        .collect())
}

/// `<return>true</return>`: the response of actions that only acknowledge.
#[derive(Debug, Deserialize)]
pub(crate) struct Acknowledged {
    #[serde(rename = "return", default)]
    pub(crate) ok: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(rename = "vpcSet", default, deserialize_with = "items")]
        vpcs: Vec<V>,
        #[serde(rename = "nextToken")]
        next: Option<String>,
    }
    #[derive(Deserialize)]
    struct V {
        #[serde(rename = "vpcId")]
        id: VpcId,
        #[serde(rename = "tagSet", default, deserialize_with = "tag_set")]
        tags: Tags,
    }

    #[test]
    fn lists_ids_and_tags_deserialize() {
        let xml = r#"<DescribeVpcsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <requestId>r</requestId>
            <vpcSet>
              <item><vpcId>vpc-1</vpcId><tagSet><item><key>a</key><value>1</value></item><item><key>b</key><value/></item></tagSet></item>
              <item><vpcId>vpc-2</vpcId><tagSet/></item>
            </vpcSet>
            <nextToken>tok</nextToken>
        </DescribeVpcsResponse>"#;
        let h: Holder = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(h.vpcs.len(), 2);
        assert_eq!(h.vpcs[0].id, VpcId::new("vpc-1"));
        assert_eq!(h.vpcs[0].tags.get("a").map(String::as_str), Some("1"));
        assert_eq!(h.vpcs[0].tags.get("b").map(String::as_str), Some(""));
        assert!(h.vpcs[1].tags.is_empty());
        assert_eq!(h.next.as_deref(), Some("tok"));

        let empty: Holder = quick_xml::de::from_str("<R><vpcSet/></R>").unwrap();
        assert!(empty.vpcs.is_empty() && empty.next.is_none());
        let absent: Holder = quick_xml::de::from_str("<R></R>").unwrap();
        assert!(absent.vpcs.is_empty());
    }

    #[test]
    fn filters_and_tag_specs_use_the_query_list_encoding() {
        let mut tags = Tags::new();
        tags.insert("user".into(), "alice".into());
        tags.insert("conflux-massive-test".into(), "true".into());
        let mut p = Params::new("RunInstances");
        p.filters(&Filter::tags(&tags));
        p.tag_specs(&[TagTarget::Instance, TagTarget::Volume], &tags);
        assert_eq!(p.get("Filter.1.Name"), Some("tag:conflux-massive-test"));
        assert_eq!(p.get("Filter.2.Value.1"), Some("alice"));
        assert_eq!(p.get("TagSpecification.2.ResourceType"), Some("volume"));
        assert_eq!(p.get("TagSpecification.1.Tag.2.Key"), Some("user"));
        assert_eq!(p.get("TagSpecification.1.Tag.2.Value"), Some("alice"));
    }
}
