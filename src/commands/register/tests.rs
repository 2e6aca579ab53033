use super::*;

#[test]
fn names_are_valid_mlflow_webhook_names() {
    assert_eq!(webhook_name("m2s", "models"), "m2s-m2s-models");
    let long = webhook_name(&"i".repeat(63), &"n".repeat(63));
    assert_eq!(long.len(), 63, "{long}");
    assert_ne!(long, webhook_name(&"i".repeat(63), &"n".repeat(62)));
    assert!(long.starts_with("m2s-iii"));
    for name in [long, webhook_name("a.b_c", "ns")] {
        let b = name.as_bytes();
        assert!(b[0].is_ascii_alphanumeric() && b[b.len() - 1].is_ascii_alphanumeric());
        assert!(b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c)));
    }
}

#[test]
fn urls_must_be_http_without_credentials() {
    check_url("http://m2s.m2s-system.svc:8080/webhook").unwrap();
    check_url("https://m2s.example/webhook").unwrap();
    for bad in [
        "m2s:8080",
        "ftp://x/y",
        "http://user:pw@x/webhook",
        "not a url",
    ] {
        assert!(check_url(bad).is_err(), "{bad}");
    }
}
