//! `GENQ_GIT_COMMIT`: the commit genq was built from (`genq --version`, `genq_build_info`);
//! "unknown" outside a git checkout (a crate tarball, a Docker build without .git).

fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=GENQ_GIT_COMMIT={commit}");
    // Rebuilt when HEAD moves (a commit or a checkout).
    for path in [
        "../../.git/HEAD",
        "../../.git/refs/heads",
        "../../.git/packed-refs",
    ] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
