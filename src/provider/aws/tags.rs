//! Tag actions: CreateTags (for resources EC2 creates implicitly, such as a VPC's main route
//! table) and DescribeTags (one listing of every tagged resource of a region, whatever its kind:
//! what destroy uses to check that nothing tagged is left).

use serde::Deserialize;

use super::client::{Ec2, Page, Params};
use super::error::AwsError;
use super::types::{Acknowledged, Filter, Tags, items};

/// One tag on one resource, as DescribeTags lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TagDescription {
    #[serde(rename = "resourceId")]
    pub resource_id: String,
    /// `instance`, `vpc`, `subnet`, `security-group`, `internet-gateway`, `key-pair`, `volume`, …
    #[serde(rename = "resourceType")]
    pub resource_type: String,
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Deserialize)]
struct DescribeTagsResponse {
    #[serde(rename = "tagSet", default, deserialize_with = "items")]
    tags: Vec<TagDescription>,
    #[serde(rename = "nextToken")]
    next_token: Option<String>,
}

impl Page for DescribeTagsResponse {
    type Item = TagDescription;
    fn into_parts(self) -> (Vec<TagDescription>, Option<String>) {
        (self.tags, self.next_token)
    }
}

impl Ec2 {
    /// Adds (or overwrites) `tags` on each of `resources` (ids of any kind).
    pub async fn create_tags<S: AsRef<str>>(
        &self,
        resources: &[S],
        tags: &Tags,
    ) -> Result<(), AwsError> {
        let mut p = Params::new("CreateTags");
        p.list("ResourceId", resources);
        for (i, (k, v)) in tags.iter().enumerate() {
            p.set(format!("Tag.{}.Key", i + 1), k)
                .set(format!("Tag.{}.Value", i + 1), v);
        }
        self.call::<Acknowledged>(&p).await.map(drop)
    }

    /// Tags matching `filters` (`resource-type`, `resource-id`, `key`, `value`, `tag:<key>`),
    /// every page.
    pub async fn describe_tags(&self, filters: &[Filter]) -> Result<Vec<TagDescription>, AwsError> {
        let mut p = Params::new("DescribeTags");
        p.filters(filters);
        self.call_paged::<DescribeTagsResponse>(p, Some(1000)).await
    }
}
