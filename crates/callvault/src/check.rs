//! `callvault check-config` (and its alias `serve --check`): loads the configuration exactly
//! as `serve` does (file, CALLVAULT_* variables, flags; `[api]` validated, `[[tenants]]`
//! compiled), then looks at what `serve` would meet at start, with the same code: the TLS
//! files (`tls::load`, what `serve` and its SIGHUP reload call), the data directory (the
//! storage monitor's reading and low-water rule), the RTP range, the database URL (parsed by the
//! catalog; with `--connect`, one read-only connection reports the schema version).
//!
//! It binds no socket and creates nothing: a data directory that does not exist is not made,
//! the catalog is neither created nor migrated. The one write is the storage monitor's probe
//! file in an existing data directory, removed at once.
//!
//! One line per check on standard output (`ok`, `warn` or `FAIL`, what, the detail), then a
//! summary; the exit status is 1 when a check failed. No secret is printed: every line loses
//! the user info of the URLs in it (`log::redact_urls`) and, verbatim, the database
//! password (percent-encoded or not) wherever it stands; key files are read by rustls alone,
//! whose errors never quote them.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use callvault_catalog::{Catalog, SchemaVersion, redact_url};
use time::OffsetDateTime;

use crate::config::{Config, Overrides};
use crate::log;
use crate::storage::{self, LowWater, Reading};
use crate::tls::{self, EXPIRY_WARNING, Validity};

/// How long `--connect` waits for the database before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Secrets shorter than this are not replaced verbatim (they would garble the report wherever
/// those few letters occur); inside a URL they are still hidden.
const MIN_VERBATIM_SECRET: usize = 4;

/// Checks the configuration `file` + `overrides` and prints the report; the exit status.
pub async fn run(file: Option<&Path>, overrides: &Overrides, connect: bool) -> ExitCode {
    let mut report = Report::default();
    let mut secrets = Secrets::default();
    // Known before the file loads, in case its error quotes it.
    if let Some(url) = &overrides.database_url {
        secrets.add_url(url);
    }
    match Config::load(file, overrides) {
        Ok(config) => {
            secrets.add_url(&config.database_url());
            report.ok("configuration", configuration(file, &config));
            check(&mut report, &config, connect, OffsetDateTime::now_utc()).await;
        }
        Err(error) => report.fail("configuration", format!("{error:#}")),
    }
    print!("{}", report.render(&secrets));
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn check(report: &mut Report, config: &Config, connect: bool, now: OffsetDateTime) {
    listeners(report, config);
    for (what, warning) in config.warnings() {
        report.warn(what, warning);
    }
    tls_files(report, config, now);
    let (status, detail) = data_directory(&config.storage.data_dir, config.storage.min_free_bytes);
    report.push(status, "data directory", detail);
    let ports = config.media.rtp_ports;
    report.ok(
        "rtp ports",
        format!(
            "{ports}: {} RTP/RTCP pairs (one per stream), bound on {}, advertised as {}",
            ports.pairs(),
            config.rtp_bind_ip(),
            config.advertised_rtp_ip()
        ),
    );
    report.ok(
        "loss concealment",
        if config.media.conceal_loss {
            "on: up to 60 ms of each loss filled (Opus FEC/PLC, G.729 erasure concealment, \
             waveform repetition for G.711/G.722/L16), counted as concealed_ms"
        } else {
            "off ([media] conceal_loss = false): every lost packet stays silence"
        },
    );
    let (status, detail) = database(&config.database_url(), connect).await;
    report.push(status, "database", detail);
    object_storage(report, config);
    notify(report, config);
}

/// `[storage] backend`: the bucket as `serve` would reach it (built, not contacted).
fn object_storage(report: &mut Report, config: &Config) {
    let Some(settings) = config.s3_settings(std::env::vars()) else {
        report.ok(
            "object storage",
            "none: recordings stay in the data directory",
        );
        return;
    };
    match callvault_objects::Objects::s3(&settings) {
        Ok(objects) => report.ok(
            "object storage",
            format!(
                "{} (endpoint {}), local copies kept {} s after upload{}",
                objects.shown(),
                settings.endpoint.as_deref().unwrap_or("AWS"),
                config.storage.local_grace_secs,
                if settings
                    .environment
                    .iter()
                    .any(|(k, _)| k == "AWS_ACCESS_KEY_ID")
                {
                    "; credentials from AWS_ACCESS_KEY_ID"
                } else {
                    "; credentials from the instance's or task's role"
                }
            ),
        ),
        Err(e) => report.fail("object storage", e.to_string()),
    }
}

/// The webhook receivers and the hook, as `serve` would start them (validated at load: a bad
/// URL or event name fails "configuration" above). Secrets are never printed.
fn notify(report: &mut Report, config: &Config) {
    if config.notify.is_empty() {
        report.ok("webhooks", "none ([[notify]] tables)");
    }
    for target in &config.notify {
        let events: Vec<&str> = crate::notify::Event::ALL
            .into_iter()
            .filter(|e| target.wants(*e))
            .map(crate::notify::Event::as_str)
            .collect();
        let detail = format!(
            "{}: {}, {}",
            target.shown_url(),
            events.join(" "),
            if target.secret.is_some() {
                "signed"
            } else {
                "not signed"
            }
        );
        if target.url.starts_with("http://") && target.secret.is_none() {
            report.warn(
                "webhook",
                format!("{detail}: plain HTTP without a secret can be read and forged on the way"),
            );
        } else {
            report.ok("webhook", detail);
        }
    }
    match config.hooks.on_complete.first() {
        None => report.ok("on_complete", "no hook"),
        Some(program) => {
            let found = if program.contains('/') {
                std::path::Path::new(program).is_file()
            } else {
                std::env::var_os("PATH").is_some_and(|paths| {
                    std::env::split_paths(&paths).any(|dir| dir.join(program).is_file())
                })
            };
            let detail = format!(
                "{} (+ {} argument(s), then the recording id and folder), timeout {} s",
                program,
                config.hooks.on_complete.len() - 1,
                config.hooks.on_complete_timeout_secs
            );
            if found {
                report.ok("on_complete", detail);
            } else {
                report.fail("on_complete", format!("{detail}: program not found"));
            }
        }
    }
}

fn configuration(file: Option<&Path>, config: &Config) -> String {
    let source = match file {
        Some(path) => format!("{}", path.display()),
        None => "no file (defaults, CALLVAULT_* variables and flags)".to_owned(),
    };
    format!(
        "{source}: every key known and valid, {} [[tenants]] rule(s), {} [[routes]]",
        config.tenants.len(),
        config.routes.len()
    )
}

fn listeners(report: &mut Report, config: &Config) {
    let sources: Vec<String> = config
        .sip
        .allowed_sources
        .iter()
        .map(ToString::to_string)
        .collect();
    report.ok(
        "sip",
        format!(
            "UDP and TCP on {}, TLS {}, sources allowed: {} (not bound by this check)",
            config.sip.listen,
            config
                .sip
                .tls_listen
                .map_or_else(|| "off".to_owned(), |addr| format!("on {addr}")),
            sources.join(" ")
        ),
    );
    report.ok(
        "http",
        format!(
            "{} (/health, /metrics, /api/v1; not bound by this check)",
            config.http.listen
        ),
    );
}

fn tls_files(report: &mut Report, config: &Config, now: OffsetDateTime) {
    let Some(listen) = config.sip.tls_listen else {
        let unused = config.tls.cert_file.is_some() || config.tls.key_file.is_some();
        report.ok(
            "tls",
            if unused {
                "off: [sip] tls_listen is not set, so the [tls] files are not read"
            } else {
                "off: [sip] tls_listen is not set"
            },
        );
        return;
    };
    let loaded = match tls::load(&config.tls) {
        Ok(loaded) => loaded,
        Err(error) => {
            report.fail("tls certificate", format!("{error:#}"));
            return;
        }
    };
    let leaf = &loaded.leaf;
    match leaf.validity_at(now) {
        Validity::NotYetValid => report.fail(
            "tls certificate",
            format!(
                "{leaf}: not valid before {}: clients will refuse the handshake",
                leaf.not_before.date()
            ),
        ),
        Validity::Expired => report.fail(
            "tls certificate",
            format!("{leaf}: expired: clients will refuse the handshake"),
        ),
        Validity::Valid(left) if left < EXPIRY_WARNING => report.warn(
            "tls certificate",
            format!("{leaf} ({} days left): renew it", left.whole_days()),
        ),
        Validity::Valid(left) => report.ok(
            "tls certificate",
            format!("{leaf} ({} days left)", left.whole_days()),
        ),
    }
    report.ok("tls", format!("on {listen}: {}", loaded.context));
}

/// What `serve` will find at the data directory: it must be (or be creatable as) a writable
/// directory with room. Does not create it.
fn data_directory(dir: &Path, min_free_bytes: Option<u64>) -> (Status, String) {
    let shown = dir.display();
    match exists(dir) {
        Err(error) => return (Status::Fail, format!("{shown}: cannot look at it: {error}")),
        Ok(true) if !dir.is_dir() => {
            return (Status::Fail, format!("{shown} is not a directory"));
        }
        Ok(true) => {}
        Ok(false) => return missing_data_directory(dir, min_free_bytes),
    }
    let reading = match storage::read(dir) {
        Ok(reading) => reading,
        Err(error) => {
            return (
                Status::Fail,
                format!("{shown}: cannot read its filesystem: {error}"),
            );
        }
    };
    if let Err(why) = &reading.writable {
        return (Status::Fail, format!("{shown} is not writable: {why}"));
    }
    room(&format!("{shown}: writable"), &reading, min_free_bytes)
}

/// A data directory `serve` would create: its nearest existing ancestor must be a directory
/// we may write in.
fn missing_data_directory(dir: &Path, min_free_bytes: Option<u64>) -> (Status, String) {
    let shown = dir.display();
    let mut ancestor = Path::new(".");
    for candidate in dir.ancestors().skip(1) {
        if candidate.as_os_str().is_empty() {
            break;
        }
        match exists(candidate) {
            Ok(true) => {
                ancestor = candidate;
                break;
            }
            Ok(false) => {}
            Err(error) => {
                return (
                    Status::Fail,
                    format!(
                        "{shown} does not exist and cannot be created: cannot look at {}: {error}",
                        candidate.display()
                    ),
                );
            }
        }
    }
    let parent = ancestor.display();
    if !ancestor.is_dir() {
        return (
            Status::Fail,
            format!("{shown} cannot be created: {parent} is not a directory"),
        );
    }
    // access(2), not a probe file: nothing is written outside the data directory.
    if let Err(error) = rustix::fs::access(
        ancestor,
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    ) {
        return (
            Status::Fail,
            format!(
                "{shown} cannot be created: {parent} is not writable ({})",
                std::io::Error::from(error)
            ),
        );
    }
    let reading = match storage::space(ancestor) {
        Ok((free_bytes, total_bytes)) => Reading {
            free_bytes,
            total_bytes,
            writable: Ok(()),
        },
        Err(error) => {
            return (
                Status::Fail,
                format!("{shown}: cannot read the filesystem of {parent}: {error}"),
            );
        }
    };
    room(
        &format!("{shown} does not exist yet; serve creates it in {parent}"),
        &reading,
        min_free_bytes,
    )
}

/// Whether `path` exists; a path through a file (`file/data`) does not.
fn exists(path: &Path) -> std::io::Result<bool> {
    match path.try_exists() {
        Err(error) if error.kind() == std::io::ErrorKind::NotADirectory => Ok(false),
        other => other,
    }
}

/// The storage monitor's low-water rule on one reading: below the mark `serve` starts but
/// refuses new calls (503), so that is a warning, not a failure.
fn room(what: &str, reading: &Reading, min_free_bytes: Option<u64>) -> (Status, String) {
    let (status, _) = LowWater::new(min_free_bytes).assess(reading);
    let free = storage::bytes(status.free_bytes);
    let mark = storage::bytes(status.mark_bytes);
    match status.verdict {
        Ok(()) => (
            Status::Ok,
            format!("{what}, {free} free (new calls are refused below {mark})"),
        ),
        Err(why) => (
            Status::Warn,
            format!("{what}, but {why}: serve would refuse new calls (503) until there is room"),
        ),
    }
}

async fn database(url: &str, connect: bool) -> (Status, String) {
    let shown = redact_url(url);
    let target = match Catalog::parse_url(url) {
        Ok(target) => target,
        // The catalog's errors hold the URL redacted already.
        Err(error) => return (Status::Fail, error.to_string()),
    };
    if !connect {
        return (
            Status::Ok,
            format!("{shown} ({target}); not connected (--connect tries it)"),
        );
    }
    let version = match tokio::time::timeout(CONNECT_TIMEOUT, Catalog::schema_version(url)).await {
        Err(_) => {
            return (
                Status::Fail,
                format!("{shown}: no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            );
        }
        Ok(Err(error)) => return (Status::Fail, format!("{shown}: {}", causes(&error))),
        Ok(Ok(version)) => version,
    };
    match version {
        SchemaVersion::Missing => (
            Status::Ok,
            format!("{shown}: reachable, no catalog there yet (serve creates it)"),
        ),
        SchemaVersion::Known { version, latest } if version == latest => (
            Status::Ok,
            format!("{shown}: schema version {version}, up to date"),
        ),
        SchemaVersion::Known { version, latest } => (
            Status::Warn,
            format!(
                "{shown}: schema version {version}; serve upgrades it to version {latest} at \
                 start (stop older nodes sharing it first)"
            ),
        ),
        SchemaVersion::Newer { latest } => (
            Status::Fail,
            format!(
                "{shown}: the catalog has migrations this build does not know (it knows up to \
                 version {latest}): a newer callvault made it"
            ),
        ),
        SchemaVersion::Failed { version } => (
            Status::Fail,
            format!(
                "{shown}: migration {version} failed part-way; the database needs repair \
                 before serve can start"
            ),
        ),
    }
}

/// An error and its causes on one line, a cause that only repeats the text before it left out
/// (sqlx's I/O error quotes its source).
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug)]
struct Line {
    status: Status,
    what: &'static str,
    detail: String,
}

#[derive(Debug, Default)]
struct Report {
    lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, status: Status, what: &'static str, detail: impl Into<String>) {
        self.lines.push(Line {
            status,
            what,
            detail: detail.into(),
        });
    }

    fn ok(&mut self, what: &'static str, detail: impl Into<String>) {
        self.push(Status::Ok, what, detail);
    }

    fn warn(&mut self, what: &'static str, detail: impl Into<String>) {
        self.push(Status::Warn, what, detail);
    }

    fn fail(&mut self, what: &'static str, detail: impl Into<String>) {
        self.push(Status::Fail, what, detail);
    }

    fn failed(&self) -> bool {
        self.lines.iter().any(|line| line.status == Status::Fail)
    }

    fn count(&self, status: Status) -> usize {
        self.lines.iter().filter(|l| l.status == status).count()
    }

    /// The report as printed: a line per check (a multi-line detail, such as a TOML error
    /// quoting the file, indented under it) and the summary, secrets hidden and control
    /// characters escaped.
    fn render(&self, secrets: &Secrets) -> String {
        let mut out = String::new();
        for line in &self.lines {
            let text = format!("{:<4} {}: {}", line.status.label(), line.what, line.detail);
            let text = secrets.hide(&log::redact_urls(&text));
            let lines: Vec<_> = text.lines().map(log::escape).collect();
            out.push_str(&lines.join("\n     "));
            out.push('\n');
        }
        out.push_str(&format!(
            "{} ok, {} warning(s), {} failed\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail)
        ));
        out
    }
}

/// What must never be printed: the database URL's password, as written and percent-decoded.
#[derive(Debug, Default)]
struct Secrets(Vec<String>);

impl Secrets {
    fn add_url(&mut self, url: &str) {
        let Some((_, rest)) = url.split_once("://") else {
            return;
        };
        // As `redact_url`: the user info ends at the last '@'.
        let Some(at) = rest.rfind('@') else {
            return;
        };
        // The user name is no secret (and "postgres" is everywhere in a report); the password is.
        if let Some((_, password)) = rest[..at].split_once(':') {
            self.add(password);
            self.add(&percent_decoded(password));
        }
    }

    fn add(&mut self, secret: &str) {
        if secret.len() >= MIN_VERBATIM_SECRET && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_owned());
            // Longest first, so a secret inside another is not half-replaced.
            self.0.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }

    fn hide(&self, text: &str) -> String {
        self.0
            .iter()
            .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
    }
}

/// `%XX` sequences decoded (what a driver sees of a percent-encoded password); anything else
/// kept as it is. Written here: ten lines are less than a dependency for one use.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|pair| std::str::from_utf8(pair).ok())
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_writable_data_directory_passes_and_keeps_no_probe() {
        let dir = tempfile::tempdir().unwrap();
        let (status, detail) = data_directory(dir.path(), Some(1));
        assert_eq!(status, Status::Ok, "{detail}");
        assert!(detail.contains("writable"), "{detail}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_missing_data_directory_passes_when_it_can_be_created_and_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a/b/data");
        let (status, detail) = data_directory(&data, Some(1));
        assert_eq!(status, Status::Ok, "{detail}");
        assert!(
            detail.contains(&format!("serve creates it in {}", dir.path().display())),
            "{detail}"
        );
        assert!(!dir.path().join("a").exists());
    }

    #[test]
    fn a_data_directory_that_is_or_sits_under_a_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let (status, detail) = data_directory(&file, None);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("is not a directory"), "{detail}");
        let (status, detail) = data_directory(&file.join("data"), None);
        assert_eq!(status, Status::Fail);
        assert!(detail.contains("cannot be created"), "{detail}");
    }

    #[test]
    fn too_little_room_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let (status, detail) = data_directory(dir.path(), Some(u64::MAX));
        assert_eq!(status, Status::Warn, "{detail}");
        assert!(detail.contains("refuse new calls"), "{detail}");
    }

    #[test]
    fn the_report_hides_the_password_in_every_form_and_escapes_the_rest() {
        let url = "postgres://vault:p%23ss%2Fw%3Frd@db.example/cv";
        let mut secrets = Secrets::default();
        secrets.add_url(url);
        let mut report = Report::default();
        report.ok("database", format!("{url} reachable"));
        report.fail("database", "driver says: password \"p#ss/w?rd\" refused");
        report.fail(
            "configuration",
            "TOML parse error at line 1\n  |\n1 | database_url = p%23ss%2Fw%3Frd\x1b[2J\nbad",
        );
        let text = report.render(&secrets);
        assert_eq!(
            text,
            "ok   database: postgres://***@db.example/cv reachable\n\
             FAIL database: driver says: password \"***\" refused\n\
             FAIL configuration: TOML parse error at line 1\n       |\n     \
             1 | database_url = ***\\x1b[2J\n     bad\n\
             1 ok, 0 warning(s), 2 failed\n"
        );
        assert!(report.failed());
    }

    #[test]
    fn short_secrets_are_left_to_the_url_rule() {
        let mut secrets = Secrets::default();
        secrets.add_url("postgres://a:b@db/cv");
        assert_eq!(secrets.hide("a database"), "a database");
        let mut secrets = Secrets::default();
        secrets.add_url("postgres://postgres@db/postgres");
        assert_eq!(
            secrets.hide("postgres://db/postgres"),
            "postgres://db/postgres"
        );
        assert_eq!(percent_decoded("p%23s%zz%"), "p#s%zz%");
    }
}
