//! Records the commit m2s is built from, for `m2s --version` and the `m2s_build_info` metric:
//! `M2S_BUILD_COMMIT` when set (the image build, which has no `.git`, passes it), else
//! `git rev-parse --short=12 HEAD`, else `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// Asks cargo to run this script again when `path` changes (only files that exist: a missing
/// one would make cargo run it on every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git_commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    // A new commit or checkout moves HEAD, or the branch HEAD points at.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        watch(&Path::new(&dir).join("HEAD"));
    }
    if let Some(common) = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"]) {
        let common = Path::new(&common);
        watch(&common.join("packed-refs"));
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch(&common.join(branch));
        }
    }
    Some(commit)
}

fn main() {
    println!("cargo:rerun-if-env-changed=M2S_BUILD_COMMIT");
    let commit = std::env::var("M2S_BUILD_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=M2S_COMMIT={commit}");
}
