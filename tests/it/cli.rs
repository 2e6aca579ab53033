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
    let version = out.trim();
    let prefix = format!("m2s {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(
        version.starts_with(&prefix) && version.ends_with(')'),
        "{version}"
    );
    // The commit is the checkout's HEAD (build.rs), unless the build was told another.
    let commit = &version[prefix.len()..version.len() - 1];
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match (std::env::var("M2S_BUILD_COMMIT"), head) {
        (Ok(given), _) if !given.is_empty() => assert_eq!(commit, given.trim()),
        (_, Some(head)) => assert_eq!(commit, head, "m2s --version: {version}"),
        (_, None) => assert_eq!(commit, "unknown"),
    }
    let (code, short, _) = m2s(&["-V"]);
    assert_eq!(code, 0);
    assert_eq!(short, out);
}

/// A path in a fresh scratch directory.
fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "m2s-cli-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn completions_are_generated_for_bash_zsh_and_fish_and_need_no_configuration() {
    // No M2S_* variables at all: completion needs neither MLflow nor a namespace.
    for (shell, marks) in [
        (
            "bash",
            &["_m2s()", "complete -F _m2s", "--context", "render"][..],
        ),
        ("zsh", &["#compdef m2s", "--context", "render"][..]),
        ("fish", &["complete -c m2s", "context", "render"][..]),
    ] {
        let (code, out, err) = m2s(&["completion", shell]);
        assert_eq!(code, 0, "{shell}: {err}");
        for mark in marks {
            assert!(out.contains(mark), "{shell}: no {mark:?} in the script");
        }
    }
    // The bash script is valid bash.
    let (_, script, _) = m2s(&["completion", "bash"]);
    let dir = scratch("completion");
    let file = dir.join("m2s.bash");
    std::fs::write(&file, script).unwrap();
    let out = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _, err) = m2s(&["completion", "tcsh"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid value 'tcsh'"), "{err}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_man_page_is_generated_from_the_command_line() {
    let (code, page, err) = m2s(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        page.starts_with(".ie \\n(.g .ds Aq"),
        "not roff: {}",
        &page[..80.min(page.len())]
    );
    for mark in [
        ".TH m2s 1",
        "\\-\\-context",
        "\\-\\-namespace",
        "render",
        "completion",
    ] {
        assert!(page.contains(mark), "no {mark:?} in m2s(1)");
    }
    let dir = scratch("man");
    let (code, _, err) = m2s(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let mut pages: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for p in [
        "m2s.1",
        "m2s-sync.1",
        "m2s-plan.1",
        "m2s-render.1",
        "m2s-webhook-register.1",
    ] {
        assert!(pages.iter().any(|x| x == p), "no {p} in {pages:?}");
    }
    let sync = std::fs::read_to_string(dir.join("m2s-sync.1")).unwrap();
    assert!(
        sync.contains("metrics\\-file"),
        "m2s-sync.1 lacks --metrics-file"
    );
    std::fs::remove_dir_all(dir).unwrap();
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
    let (code, _, err) = m2s(&["plan", "--output", "xml"]);
    assert_eq!(code, 1, "usage errors exit 1 (2 means changes pending)");
    assert!(err.contains("[possible values: text, json, yaml]"), "{err}");
    // -n is --namespace, as in kubectl.
    let (code, _, err) = m2s(&[
        "--mlflow-host",
        "http://127.0.0.1:9",
        "-n",
        "Not_A_Namespace",
        "plan",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "namespace \"Not_A_Namespace\" (--namespace) is not a valid Kubernetes namespace name"
        ),
        "{err}"
    );
}
