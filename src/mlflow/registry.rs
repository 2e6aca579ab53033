//! The registry side: registered models page by page, single versions.

use std::collections::HashSet;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{MlflowClient, ModelVersion, RegisteredModel, RegistrySnapshot, MAX_PAGES, PAGE_SIZE};

#[derive(Debug, Deserialize)]
struct SearchPage {
    #[serde(default)]
    registered_models: Vec<RegisteredModel>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct VersionResponse {
    model_version: ModelVersion,
}

/// Parses one page of `registered-models/search`; public for the fuzz and property tests.
pub fn parse_search_page(body: &[u8]) -> Result<(Vec<RegisteredModel>, Option<String>)> {
    let page: SearchPage = serde_json::from_slice(body)?;
    Ok((
        page.registered_models,
        page.next_page_token.filter(|t| !t.is_empty()),
    ))
}

impl MlflowClient {
    /// Every registered model matching `filter` (with latest versions per stage, tags and
    /// aliases), handed to `page` one search page at a time: a large registry is never held
    /// whole. A failing page fails the call; pages already handed over must then be discarded.
    pub fn for_each_model_page(
        &self,
        filter: Option<&str>,
        mut page: impl FnMut(Vec<RegisteredModel>),
    ) -> Result<()> {
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        let page_size = PAGE_SIZE.to_string();
        for _ in 0..MAX_PAGES {
            let mut query = vec![("max_results", page_size.as_str())];
            if let Some(f) = filter {
                query.push(("filter", f));
            }
            if let Some(t) = &token {
                query.push(("page_token", t.as_str()));
            }
            let found: SearchPage = self.get_required("registered-models/search", &query)?;
            page(found.registered_models);
            match found.next_page_token.filter(|t| !t.is_empty()) {
                None => return Ok(()),
                Some(next) => {
                    if !seen_tokens.insert(next.clone()) {
                        bail!(
                            "MLflow at {} returned a page token it had returned before: the registered-models/search pagination loops",
                            self.endpoint("registered-models/search")
                        );
                    }
                    token = Some(next);
                }
            }
        }
        bail!(
            "MLflow at {} returned more than {MAX_PAGES} pages of registered models",
            self.endpoint("registered-models/search")
        )
    }

    /// The registered model named `name` if it also matches `filter`; `None` when MLflow does
    /// not return it (deleted, renamed, or outside the filter). One search request for any
    /// name MLflow's filter language can quote.
    pub fn model_named(&self, name: &str, filter: Option<&str>) -> Result<Option<RegisteredModel>> {
        let search = name_filter(name, filter);
        let mut found = None;
        self.for_each_model_page(Some(&search), |page| {
            if found.is_none() {
                found = page.into_iter().find(|m| m.name == name);
            }
        })?;
        Ok(found)
    }

    /// Every registered model matching `filter`, at once (small registries, tests).
    pub fn snapshot(&self, filter: Option<&str>) -> Result<RegistrySnapshot> {
        let mut models = Vec::new();
        self.for_each_model_page(filter, |page| models.extend(page))?;
        Ok(RegistrySnapshot { models })
    }

    pub fn model_version(&self, name: &str, version: &str) -> Result<Option<ModelVersion>> {
        Ok(self
            .get_json::<VersionResponse>(
                "model-versions/get",
                &[("name", name), ("version", version)],
            )?
            .map(|r| r.model_version))
    }
}

/// A `registered-models/search` filter for the model named `name` within `filter`. MLflow's
/// filter language has no escape character: a name is quoted with the quote it does not
/// contain; a name with both quotes is searched by the prefix before its first quote (a
/// superset, which [`MlflowClient::model_named`] narrows to the exact name). MLflow accepts
/// `AND` but no parentheses, so the user's filter is appended as it is.
pub fn name_filter(name: &str, filter: Option<&str>) -> String {
    let clause = if !name.contains('\'') {
        format!("name = '{name}'")
    } else if !name.contains('"') {
        format!("name = \"{name}\"")
    } else {
        let prefix = &name[..name.find(['\'', '"']).unwrap_or(name.len())];
        format!("name LIKE '{prefix}%'")
    };
    match filter.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => format!("{clause} AND {f}"),
        None => clause,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mlflow::AliasRef;

    #[test]
    fn parses_a_search_page() {
        let body = br#"{"registered_models":[{"name":"iris","creation_timestamp":1,
            "latest_versions":[{"name":"iris","version":"3","current_stage":"Production",
            "source":"runs:/r1/model","run_id":"r1","status":"READY",
            "tags":[{"key":"m2s.memory","value":"2Gi"}]}],
            "tags":[{"key":"deployment-image","value":"x/y:1"}],
            "aliases":[{"alias":"champion","version":"2"}]}],"next_page_token":"abc"}"#;
        let (models, token) = parse_search_page(body).unwrap();
        assert_eq!(token.as_deref(), Some("abc"));
        assert_eq!(models[0].latest_versions[0].version, "3");
        assert_eq!(models[0].latest_versions[0].tags[0].value, "2Gi");
        assert_eq!(models[0].tag("deployment-image"), Some("x/y:1"));
        assert_eq!(
            models[0].aliases[0],
            AliasRef {
                alias: "champion".into(),
                version: "2".into()
            }
        );
        let (models, token) = parse_search_page(b"{}").unwrap();
        assert!(models.is_empty() && token.is_none());
        assert!(parse_search_page(b"{\"registered_models\":[{}]}").is_err());
        assert!(parse_search_page(b"<html>").is_err());
    }

    #[test]
    fn name_filters_quote_what_mlflow_can_quote() {
        assert_eq!(name_filter("iris", None), "name = 'iris'");
        assert_eq!(
            name_filter("iris", Some(" name LIKE 'ir%' ")),
            "name = 'iris' AND name LIKE 'ir%'"
        );
        assert_eq!(name_filter("it's", Some("")), "name = \"it's\"");
        assert_eq!(name_filter("a\"b", None), "name = 'a\"b'");
        // `%` and `_` are literal under `=`; a name with both quotes falls back to a prefix.
        assert_eq!(name_filter("50%_x", None), "name = '50%_x'");
        assert_eq!(
            name_filter("it's \"x\"", Some("tags.team = 'a'")),
            "name LIKE 'it%' AND tags.team = 'a'"
        );
    }
}
