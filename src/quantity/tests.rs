use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

#[test]
fn spellings_of_one_value_are_equal() {
    for (a, b) in [
        ("0.5", "500m"),
        ("1024Mi", "1Gi"),
        ("1", "1000m"),
        ("1e3", "1k"),
        ("1.5Gi", "1536Mi"),
        (".5", "0.5"),
        ("+2", "2"),
        ("1E6", "1M"),
        ("100e-3", "100m"),
    ] {
        assert!(q(a).same_value(&q(b)), "{a} vs {b}");
    }
    assert!(!q("1G").same_value(&q("1Gi")));
    assert!(!q("500m").same_value(&q("501m")));
}

#[test]
fn canonical_spelling_follows_kubernetes() {
    for (input, canonical) in [
        ("0.5", "500m"),
        ("1024Mi", "1Gi"),
        ("1536Mi", "1536Mi"),
        ("2000m", "2"),
        ("1e3", "1k"),
        ("1.5Gi", "1536Mi"),
        ("512", "512"),
        ("0.5Ki", "512"),
        ("0", "0"),
        ("0Gi", "0"),
        ("100Gi", "100Gi"),
        ("1.5", "1500m"),
        ("2.5G", "2500M"),
    ] {
        assert_eq!(q(input).to_string(), canonical, "{input}");
    }
}

#[test]
fn bad_quantities_are_refused_with_the_reason() {
    for (bad, why) in [
        ("lots", "expected a number"),
        ("-1", "negative"),
        ("1Gb", "unknown suffix"),
        ("", "expected a number"),
        ("1.2.3", "expected a number"),
        ("0.0000000001", "finer than a nano-unit"),
        ("99999999999999999999Ei", "too large"),
        ("1e99", "exponent out of range"),
        (".", "expected a number"),
    ] {
        let err = Quantity::parse(bad).unwrap_err();
        assert!(err.contains(why), "{bad}: {err}");
        assert!(err.contains(&format!("{bad:?}")), "{err}");
    }
}

#[test]
fn integers() {
    assert!(q("2").is_integer());
    assert!(!q("500m").is_integer());
    assert!(q("0").is_zero());
}
