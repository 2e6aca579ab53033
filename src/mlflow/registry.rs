//! The registry side: registered models page by page, single versions.

use std::collections::HashSet;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::{MlflowClient, ModelVersion, RegisteredModel, MAX_PAGES, PAGE_SIZE};

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

/// Parses one page of `registered-models/search` into the type every search reads (the fuzz
/// and property tests feed it).
#[cfg(test)]
pub(crate) fn parse_search_page(body: &[u8]) -> Result<(Vec<RegisteredModel>, Option<String>)> {
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
    pub(crate) fn for_each_model_page(
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
    pub(crate) fn model_named(
        &self,
        name: &str,
        filter: Option<&str>,
    ) -> Result<Option<RegisteredModel>> {
        let search = name_filter(name, filter);
        let mut found = None;
        self.for_each_model_page(Some(&search), |page| {
            if found.is_none() {
                found = page.into_iter().find(|m| m.name == name);
            }
        })?;
        Ok(found)
    }

    pub(crate) fn model_version(&self, name: &str, version: &str) -> Result<Option<ModelVersion>> {
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
pub(crate) fn name_filter(name: &str, filter: Option<&str>) -> String {
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
mod tests;
