//! Names the build for `callvault_build_info`: the git commit (when built from a git checkout;
//! `CALLVAULT_GIT_COMMIT` overrides it, e.g. in an image built without `.git`) and the
//! compiler's version. Neither is required: a build from a source tarball says `unknown`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=CALLVAULT_GIT_COMMIT");
    let commit = std::env::var("CALLVAULT_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(git_commit)
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CALLVAULT_GIT_COMMIT={}", commit.trim());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let version = output(Command::new(rustc).arg("--version")).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CALLVAULT_RUSTC={version}");
}

/// The checkout's commit, and a rerun whenever it moves (HEAD, or the branch it names).
fn git_commit() -> Option<String> {
    let git_dir = output(Command::new("git").args(["rev-parse", "--git-dir"]))?;
    let head = Path::new(&git_dir).join("HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed={}", head.display());
    }
    if let Some(branch) = output(Command::new("git").args(["symbolic-ref", "-q", "HEAD"])) {
        // A worktree keeps its HEAD apart but its branches in the common directory.
        let common =
            output(Command::new("git").args(["rev-parse", "--git-common-dir"])).unwrap_or(git_dir);
        let reference = Path::new(&common).join(&branch);
        if reference.exists() {
            println!("cargo:rerun-if-changed={}", reference.display());
        }
    }
    output(Command::new("git").args(["rev-parse", "--short=12", "HEAD"]))
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}
