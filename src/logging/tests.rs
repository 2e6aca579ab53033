use super::*;

#[test]
fn logfmt_values_are_quoted_only_when_needed() {
    assert_eq!(quoted("iris-production"), "iris-production");
    assert_eq!(quoted("0.25"), "0.25");
    assert_eq!(quoted(""), "\"\"");
    assert_eq!(quoted("sync finished"), "\"sync finished\"");
    assert_eq!(quoted("a=b"), "\"a=b\"");
    assert_eq!(quoted("say \"hi\"\nbye\\"), "\"say \\\"hi\\\"\\nbye\\\\\"");
}
