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
