//! The packaging files: the systemd unit verifies and starts the real binary with arguments it
//! accepts, and the `cargo deb` metadata names files that exist. (The `.deb` itself is built by
//! hand with `cargo deb`: see README, Packaging; the image recipe by scripts/docker-steps.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::BIN;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn unit() -> String {
    std::fs::read_to_string(repo().join("packaging/callvault.service")).unwrap()
}

/// `Key=value` lines of the unit.
fn settings<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_systemd_unit_verifies_and_notifies_readiness() {
    let unit = unit();
    assert_eq!(settings(&unit, "Type"), ["notify"]);
    assert_eq!(settings(&unit, "User"), ["callvault"]);
    assert_eq!(settings(&unit, "ProtectSystem"), ["strict"]);
    assert_eq!(settings(&unit, "NoNewPrivileges"), ["yes"]);
    assert_eq!(settings(&unit, "CapabilityBoundingSet"), [""]);
    assert_eq!(settings(&unit, "ReadWritePaths"), ["/var/lib/callvault"]);
    // The binary where systemd-analyze can find it: the one the tests built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("callvault.service");
    std::fs::write(&path, unit.replace("/usr/bin/callvault", BIN)).unwrap();
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd; scripts/setup --tests installs it)");
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{stderr}");
    assert!(
        !stderr.contains("callvault.service"),
        "warnings about the unit: {stderr}"
    );
}

#[test]
fn the_units_command_line_is_one_serve_accepts() {
    let unit = unit();
    let exec = settings(&unit, "ExecStart");
    assert_eq!(exec.len(), 1);
    let data = tempfile::tempdir().unwrap();
    let config = repo().join("config/callvault.toml");
    let args: Vec<String> = exec[0]
        .split_whitespace()
        .skip(1)
        .map(|word| match word {
            "/etc/callvault/callvault.toml" => config.display().to_string(),
            "/var/lib/callvault" => data.path().display().to_string(),
            other => other.to_owned(),
        })
        .collect();
    assert_eq!(args[0], "serve");
    let check = Command::new(BIN)
        .args(&args)
        .args(["--check", "--sip-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn the_deb_metadata_names_files_that_exist() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().unwrap();
    let mut installed = Vec::new();
    for asset in assets {
        let asset = asset.as_array().unwrap();
        let (source, target) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        installed.push(target.to_owned());
        if source.starts_with("target/") {
            continue;
        }
        assert!(crate_dir.join(source).is_file(), "{source}");
    }
    assert!(installed.iter().any(|t| t == "usr/bin/"));
    assert!(
        installed
            .iter()
            .any(|t| t == "etc/callvault/callvault.toml")
    );
    for conf in deb["conf-files"].as_array().unwrap() {
        let conf = conf.as_str().unwrap().trim_start_matches('/');
        assert!(installed.iter().any(|t| t == conf), "{conf} is installed");
    }
    let scripts = crate_dir.join(deb["maintainer-scripts"].as_str().unwrap());
    let postinst = std::fs::read_to_string(scripts.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"), "{postinst}");
    assert!(postinst.contains("/var/lib/callvault"));
    assert_eq!(
        postinst.matches("#DEBHELPER#").count(),
        1,
        "cargo deb puts the unit's snippets there, at every occurrence of the token"
    );
    let sh = Command::new("sh")
        .arg("-n")
        .arg(scripts.join("postinst"))
        .status()
        .unwrap();
    assert!(sh.success(), "postinst parses");
    let units = crate_dir.join(deb["systemd-units"]["unit-scripts"].as_str().unwrap());
    assert!(units.join("callvault.service").is_file());
}
