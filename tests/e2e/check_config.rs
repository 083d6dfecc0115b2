//! `callvault check-config` (and `serve --check`) on the real binary: a good configuration
//! passes every check without creating its data directory; a key of another certificate, an
//! invalid `[[tenants]]` pattern, an unknown key and an unusable database URL each fail with
//! exit status 1, naming the problem, and never print the key or the database password.

use std::path::{Path, PathBuf};
use std::process::Command;

use callvault_sip_transport::testing::{TestCa, TestCertificate};

use crate::support::BIN;

/// A configuration an operator would write: the server's certificate and key, the CA of the
/// SBCs' certificates (mutual TLS), a tenant rule; the data directory not made yet.
struct Setup {
    dir: tempfile::TempDir,
    certificate: TestCertificate,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("callvault e2e CA");
        let certificate = ca.issue("callvault.test", &["127.0.0.1"]);
        std::fs::write(dir.path().join("ca.pem"), ca.certificate_pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), &certificate.certificate_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), &certificate.key_pem).unwrap();
        Setup { dir, certificate }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn data_dir(&self) -> PathBuf {
        self.path("data")
    }

    fn toml(&self) -> String {
        format!(
            "[sip]\ntls_listen = \"127.0.0.1:0\"\n\
             [tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n\
             require_client_cert = true\n\n\
             [[tenants]]\nname = \"acme\"\nrequest_user = \"^acme-\"\n",
            text(&self.path("cert.pem")),
            text(&self.path("key.pem")),
            text(&self.path("ca.pem")),
        )
    }

    /// Runs `callvault <command…> --config F` with `toml` in F and the usual flags.
    fn run(&self, command: &[&str], toml: &str, extra: &[&str]) -> Outcome {
        let config = self.path("callvault.toml");
        std::fs::write(&config, toml).unwrap();
        let output = Command::new(BIN)
            .args(command)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(self.data_dir())
            .args([
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--rtp-ip", "127.0.0.1", "--rtp-ports", "39300-39399"])
            .args(extra)
            .output()
            .unwrap();
        Outcome {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn check(&self, toml: &str, extra: &[&str]) -> Outcome {
        self.run(&["check-config"], toml, extra)
    }
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The report's line for `what` (the first one).
    fn line(&self, what: &str) -> &str {
        self.stdout
            .lines()
            .find(|line| line.get(5..).is_some_and(|rest| rest.starts_with(what)))
            .unwrap_or_else(|| panic!("no line for {what:?} in:\n{}", self.stdout))
    }

    fn assert_never_shows(&self, secret: &str) {
        assert!(
            !self.stdout.contains(secret) && !self.stderr.contains(secret),
            "{secret:?} printed:\n{}\n{}",
            self.stdout,
            self.stderr
        );
    }
}

fn text(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A local port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_good_configuration_passes_every_check_and_creates_nothing() {
    let setup = Setup::new();
    let report = setup.check(&setup.toml(), &[]);
    assert_eq!(report.code, Some(0), "{}\n{}", report.stdout, report.stderr);
    assert!(!report.stdout.contains("FAIL"), "{}", report.stdout);
    assert!(
        report
            .line("configuration")
            .contains("every key known and valid, 1 [[tenants]] rule(s)"),
        "{}",
        report.stdout
    );
    let certificate = report.line("tls certificate");
    assert!(
        certificate
            .starts_with("ok   tls certificate: CN=callvault.test, names 127.0.0.1, expires "),
        "{certificate}"
    );
    assert!(
        report
            .line("tls:")
            .contains("1 CA certificate(s), client certificates required"),
        "{}",
        report.stdout
    );
    assert!(
        report.line("data directory").starts_with(&format!(
            "ok   data directory: {} does not exist yet; serve creates it in {}",
            setup.data_dir().display(),
            setup.dir.path().display()
        )),
        "{}",
        report.stdout
    );
    assert!(
        report
            .line("rtp ports")
            .starts_with("ok   rtp ports: 39300-39399: 50 RTP/RTCP pairs"),
        "{}",
        report.stdout
    );
    assert!(
        report
            .line("database")
            .starts_with("ok   database: sqlite://"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.ends_with(" 0 failed\n"), "{}", report.stdout);
    assert!(!setup.data_dir().exists(), "the check created the data dir");

    // `serve --check` is the same check (free space aside: other tests write meanwhile).
    let alias = setup.run(&["serve", "--check"], &setup.toml(), &[]);
    assert_eq!(alias.code, Some(0));
    let but_space = |stdout: &str| {
        stdout
            .lines()
            .filter(|line| !line.contains("data directory"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(but_space(&alias.stdout), but_space(&report.stdout));

    // --connect looks at the catalog, read-only: none yet, then one serve would use as is.
    let connected = setup.check(&setup.toml(), &["--connect"]);
    assert_eq!(connected.code, Some(0), "{}", connected.stdout);
    assert!(
        connected
            .line("database")
            .ends_with("no catalog there yet (serve creates it)"),
        "{}",
        connected.stdout
    );
    assert!(!setup.data_dir().exists(), "--connect created the data dir");
    std::fs::create_dir(setup.data_dir()).unwrap();
    callvault_catalog::Catalog::open(&callvault_catalog::Catalog::sqlite_url(&setup.data_dir()))
        .await
        .unwrap()
        .close()
        .await;
    let connected = setup.check(&setup.toml(), &["--connect"]);
    assert_eq!(connected.code, Some(0), "{}", connected.stdout);
    let database = connected.line("database");
    assert!(
        database.contains(": schema version ") && database.ends_with(", up to date"),
        "{database}"
    );
    assert!(
        connected.line("data directory").starts_with(&format!(
            "ok   data directory: {}: writable",
            setup.data_dir().display()
        )),
        "{}",
        connected.stdout
    );
}

#[test]
fn a_key_of_another_certificate_fails_and_is_never_shown() {
    let setup = Setup::new();
    let other = TestCa::new("other CA").issue("callvault.test", &["127.0.0.1"]);
    std::fs::write(setup.path("key.pem"), &other.key_pem).unwrap();

    let report = setup.check(&setup.toml(), &[]);
    assert_eq!(report.code, Some(1), "{}", report.stdout);
    let line = report.line("tls certificate");
    assert!(
        line.starts_with("FAIL tls certificate: ")
            && line.contains("private key does not match the certificate")
            && line.contains("key.pem"),
        "{line}"
    );
    for key_line in other
        .key_pem
        .lines()
        .chain(setup.certificate.key_pem.lines())
    {
        if !key_line.starts_with("-----") {
            report.assert_never_shows(key_line);
        }
    }
    // The other checks still ran.
    assert!(report.line("data directory").starts_with("ok "));
    assert!(report.stdout.ends_with(" 1 failed\n"), "{}", report.stdout);

    // `serve` refuses it too, before making anything in the data directory.
    let serve = setup.run(&["serve"], &setup.toml(), &[]);
    assert_eq!(serve.code, Some(1));
    assert!(serve.stderr.contains("does not match"), "{}", serve.stderr);
    assert!(!setup.data_dir().exists(), "serve created the data dir");
}

#[test]
fn an_invalid_tenant_pattern_fails_the_configuration() {
    let setup = Setup::new();
    let toml = setup.toml().replace("\"^acme-\"", "\"^acme-(\"");
    let report = setup.check(&toml, &[]);
    assert_eq!(report.code, Some(1), "{}", report.stdout);
    let line = report.line("configuration");
    assert!(
        line.starts_with("FAIL configuration: ")
            && line.contains("[[tenants]] #1 (\"acme\")")
            && line.contains("request_user \"^acme-(\" is not a valid regular expression"),
        "{}",
        report.stdout
    );
    assert!(report.stdout.ends_with("0 ok, 0 warning(s), 1 failed\n"));
}

#[test]
fn an_unknown_key_fails_naming_it() {
    let setup = Setup::new();
    let toml = setup.toml().replace("tls_listen", "tls_listen_addr");
    let report = setup.check(&toml, &[]);
    assert_eq!(report.code, Some(1), "{}", report.stdout);
    assert!(
        report
            .line("configuration")
            .starts_with("FAIL configuration: ")
            && report.stdout.contains("unknown field `tls_listen_addr`"),
        "{}",
        report.stdout
    );
}

#[test]
fn a_database_password_with_url_characters_is_never_printed() {
    let setup = Setup::new();
    let port = closed_port();
    let password = "s3c#r/e?t";
    let encoded = "s3c%23r%2Fe%3Ft";

    // As written in the file, unencoded: refused before any connection, the cause named.
    let toml = format!(
        "{}\n[storage]\ndatabase_url = \"postgres://vault:{password}@127.0.0.1:{port}/callvault\"\n",
        setup.toml().split("\n[[tenants]]").next().unwrap()
    );
    let report = setup.check(&toml, &[]);
    assert_eq!(report.code, Some(1), "{}", report.stdout);
    let line = report.line("database");
    assert!(
        line.starts_with("FAIL database: invalid catalog URL \"postgres://***@127.0.0.1:")
            && line.contains("percent-encoded"),
        "{line}"
    );
    report.assert_never_shows(password);

    // Percent-encoded, on the command line: it parses, and the server is not there.
    let url = format!("postgres://vault:{encoded}@127.0.0.1:{port}/callvault");
    let parsed = setup.check(&setup.toml(), &["--database-url", &url]);
    assert_eq!(parsed.code, Some(0), "{}", parsed.stdout);
    assert!(
        parsed
            .line("database")
            .contains("not connected (--connect tries it)"),
        "{}",
        parsed.stdout
    );
    let connected = setup.check(&setup.toml(), &["--database-url", &url, "--connect"]);
    assert_eq!(connected.code, Some(1), "{}", connected.stdout);
    let line = connected.line("database");
    assert!(
        line.starts_with(&format!(
            "FAIL database: postgres://***@127.0.0.1:{port}/callvault: "
        )) && line.contains("Connection refused"),
        "{line}"
    );
    for outcome in [&parsed, &connected] {
        outcome.assert_never_shows(password);
        outcome.assert_never_shows(encoded);
        outcome.assert_never_shows("s3c");
    }

    // `serve` on the same URL: its error hides the password too.
    let serve = setup.run(&["serve"], &toml, &[]);
    assert_eq!(serve.code, Some(1));
    serve.assert_never_shows(password);
}

#[test]
fn webhooks_and_the_hook_are_checked_and_their_secrets_never_shown() {
    let setup = Setup::new();
    let good = format!(
        "{}\n[[notify]]\nurl = \"https://hooks.example.com/cv?token=qs-secret\"\n\
         secret = \"hmac-secret-value\"\nevents = [\"recording.completed\", \"recording.deleted\"]\n\n\
         [[notify]]\nurl = \"http://127.0.0.1:9/plain\"\n\n\
         [hooks]\non_complete = [\"/bin/true\", \"--flag\"]\n",
        setup.toml()
    );
    let report = setup.check(&good, &[]);
    assert_eq!(report.code, Some(0), "{}\n{}", report.stdout, report.stderr);
    assert_eq!(
        report.line("webhook"),
        "ok   webhook: https://hooks.example.com/cv: recording.completed recording.deleted, signed"
    );
    assert!(
        report.stdout.contains(
            "warn webhook: http://127.0.0.1:9/plain: recording.completed recording.failed, not signed: plain HTTP without a secret"
        ),
        "{}",
        report.stdout
    );
    assert!(
        report
            .line("on_complete")
            .starts_with("ok   on_complete: /bin/true (+ 1 argument(s)")
    );
    report.assert_never_shows("hmac-secret-value");
    report.assert_never_shows("qs-secret");

    for (bad, why) in [
        (
            "[[notify]]\nurl = \"ftp://hooks.example.com/\"\n",
            "[[notify]] #1: url ftp://hooks.example.com/: the scheme must be http or https",
        ),
        (
            "[[notify]]\nurl = \"https://h.example/\"\nevents = [\"recording.done\"]\n",
            "[[notify]] #1: unknown event \"recording.done\"",
        ),
        (
            "[[notify]]\nurl = \"https://h.example/\"\nsecrets = \"x\"\n",
            "unknown field `secrets`",
        ),
    ] {
        let report = setup.check(&format!("{}\n{bad}", setup.toml()), &[]);
        assert_eq!(report.code, Some(1), "{bad}: {}", report.stdout);
        assert!(
            report.line("configuration").starts_with("FAIL"),
            "{bad}: {}",
            report.stdout
        );
        assert!(report.stdout.contains(why), "{bad}: {}", report.stdout);
    }
    let missing = format!(
        "{}\n[hooks]\non_complete = [\"/nonexistent/transcribe\"]\n",
        setup.toml()
    );
    let report = setup.check(&missing, &[]);
    assert_eq!(report.code, Some(1));
    assert!(
        report
            .line("on_complete")
            .starts_with("FAIL on_complete: /nonexistent/transcribe")
    );
}
