//! The command line itself: help, version, and configuration errors before any network call.

use std::process::Command;

fn m2s(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_m2s"));
    for (k, _) in std::env::vars() {
        if k.starts_with("M2S_") || k.starts_with("MLFLOW_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_and_version() {
    let (code, out, _) = m2s(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("sync") && out.contains("plan"), "{out}");
    let (code, out, _) = m2s(&["sync", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--dry-run")
            && out.contains("M2S_MLFLOW_HOST")
            && out.contains("--allow-delete-all"),
        "{out}"
    );
    let (code, out, _) = m2s(&["plan", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("--output") && out.contains("--detailed-exitcode") && out.contains("json"),
        "{out}"
    );
    let (code, out, _) = m2s(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("m2s {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn config_errors_name_the_setting_and_touch_nothing() {
    // Port 9 on loopback: nothing listens; a config error must come before any connection.
    let (code, _, err) = m2s(&["plan"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("error: no MLflow URL: set M2S_MLFLOW_HOST"),
        "{err}"
    );
    let (code, _, err) = m2s(&["--mlflow-host", "http://127.0.0.1:9", "plan"]);
    assert_eq!(code, 1);
    assert!(err.contains("no namespace: set M2S_NAMESPACE"), "{err}");
    let (code, _, err) = m2s(&[
        "--mlflow-host",
        "http://127.0.0.1:9",
        "--namespace",
        "ns",
        "--target",
        "seldon-v2",
        "--default-image",
        "x/server:1",
        "plan",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("M2S_SELDON_DEF_IMAGE has no counterpart on target seldon-v2 (Model)"),
        "{err}"
    );
    let (code, _, err) = m2s(&[
        "--mlflow-host",
        "http://127.0.0.1:9",
        "--namespace",
        "ns",
        "--stages",
        "Prod",
        "sync",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown stage \"Prod\""), "{err}");
    let (code, _, err) = m2s(&["--mlflow-host", "not a url", "--namespace", "ns", "plan"]);
    assert_eq!(code, 1);
    assert!(err.contains("MLflow URL \"not a url\""), "{err}");
    let (code, _, _) = m2s(&["plan", "--output", "yaml"]);
    assert_eq!(code, 1, "usage errors exit 1 (2 means changes pending)");
}
