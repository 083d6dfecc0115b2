//! The harness: the real `callvault` binary started as a user starts it, on loopback, with
//! its own data directory and port range; the catalog read back through the real CLI.

pub mod audio;
pub mod client;
pub mod codec;
pub mod http;
pub mod metrics;
pub mod receiver;
pub mod srtp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_callvault");

/// Each server in this test binary gets its own RTP range, so tests run in parallel.
static NEXT_RANGE: AtomicU16 = AtomicU16::new(0);

pub struct Server {
    child: Child,
    pub sip: SocketAddr,
    /// The SIP over TLS address, when `[sip] tls_listen` was configured.
    pub sip_tls: Option<SocketAddr>,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    _dir: tempfile::TempDir,
    log: mpsc::Receiver<String>,
    log_lines: Vec<String>,
}

impl Server {
    pub fn start() -> Server {
        Server::start_with("")
    }

    /// Starts `callvault serve` with extra TOML configuration.
    pub fn start_with(extra_toml: &str) -> Server {
        Server::launch(tempfile::tempdir().unwrap(), extra_toml)
    }

    /// Starts a server on the data directory an earlier one left (see [`Server::into_dir`]).
    pub fn start_in(dir: tempfile::TempDir) -> Server {
        Server::launch(dir, "")
    }

    /// [`Server::start_in`] with extra TOML configuration (a restart with the same file).
    pub fn start_in_with(dir: tempfile::TempDir, extra_toml: &str) -> Server {
        Server::launch(dir, extra_toml)
    }

    /// Starts a server whose data directory is `data_dir` (e.g. on a small filesystem).
    pub fn start_with_data_dir(data_dir: PathBuf, extra_toml: &str) -> Server {
        Server::launch_at(tempfile::tempdir().unwrap(), Some(data_dir), extra_toml)
    }

    /// Stops waiting on the process (it may already be dead) and keeps its directory.
    pub fn into_dir(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let placeholder = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self._dir, placeholder)
    }

    /// Starts `callvault serve` with extra TOML, extra flags and extra environment variables.
    pub fn start_with_options(extra_toml: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::launch_with(tempfile::tempdir().unwrap(), None, extra_toml, args, env)
    }

    /// [`Server::start_in_with`] with extra flags and environment variables (a restart of a
    /// server started with [`Server::start_with_options`]).
    pub fn start_in_with_options(
        dir: tempfile::TempDir,
        extra_toml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        Server::launch_with(dir, None, extra_toml, args, env)
    }

    /// The configuration file the server was started with (SIGHUP reads it again).
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("callvault.toml")
    }

    fn launch(dir: tempfile::TempDir, extra_toml: &str) -> Server {
        Server::launch_at(dir, None, extra_toml)
    }

    fn launch_at(dir: tempfile::TempDir, data_dir: Option<PathBuf>, extra_toml: &str) -> Server {
        Server::launch_with(dir, data_dir, extra_toml, &[], &[])
    }

    fn launch_with(
        dir: tempfile::TempDir,
        data_dir: Option<PathBuf>,
        extra_toml: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let data_dir = data_dir.unwrap_or_else(|| dir.path().join("data"));
        let n = NEXT_RANGE.fetch_add(1, Ordering::Relaxed);
        let lo = 20_000 + (std::process::id() as u16 % 4) * 4_000 + (n % 20) * 200;
        let config = dir.path().join("callvault.toml");
        std::fs::write(&config, extra_toml).unwrap();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args([
                "--rtp-ip",
                "127.0.0.1",
                "--rtp-ports",
                &format!("{lo}-{}", lo + 199),
            ])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("CALLVAULT_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the callvault binary starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("CALLVAULT_E2E_ECHO").is_some() {
                    eprintln!("[server] {line}");
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            sip: "0.0.0.0:0".parse().unwrap(),
            sip_tls: None,
            http: "0.0.0.0:0".parse().unwrap(),
            data_dir,
            _dir: dir,
            log: rx,
            log_lines: Vec::new(),
        };
        let line = server.wait_for_log("callvault listening", Duration::from_secs(20));
        server.sip = field(&line, "sip").parse().unwrap();
        server.sip_tls = field(&line, "sip_tls").parse().ok();
        server.http = field(&line, "http").parse().unwrap();
        server
    }

    /// Waits for a log line containing `needle` (lines already seen count too).
    pub fn wait_for_log(&mut self, needle: &str, wait: Duration) -> String {
        if let Some(l) = self.log_lines.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.log_lines.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {needle:?} within {wait:?}; log so far:\n{}",
                    self.log_lines.join("\n")
                ),
            }
        }
    }

    /// Every log line the server has written so far (without waiting for more).
    pub fn log_so_far(&mut self) -> Vec<String> {
        while let Ok(line) = self.log.try_recv() {
            self.log_lines.push(line);
        }
        self.log_lines.clone()
    }

    /// Runs `callvault recordings …` against this server's data directory.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("recordings")
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .output()
            .unwrap()
    }

    /// Runs `callvault ARGS --data-dir …` (any command) with `stdin` as its standard input.
    pub fn operator(&self, args: &[&str], stdin: &str) -> std::process::Output {
        use std::io::Write as _;
        let mut child = Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn list(&self) -> Vec<Value> {
        let out = self.cli(&["list", "--json"]);
        assert!(
            out.status.success(),
            "list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match serde_json::from_slice(&out.stdout).expect("list --json prints JSON") {
            Value::Array(a) => a,
            other => panic!("list --json printed {other}"),
        }
    }

    pub fn show(&self, id: &str) -> Value {
        let out = self.cli(&["show", id, "--json"]);
        assert!(
            out.status.success(),
            "show failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("show --json prints JSON")
    }

    /// The recording made for `call_id`, once it is complete (polled through the CLI).
    pub fn completed(&self, call_id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let found = self
                .list()
                .into_iter()
                .find(|r| r["ingress_call_id"] == call_id);
            if let Some(r) = &found
                && r["state"] != "active"
            {
                return self.show(r["id"].as_str().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "recording of {call_id} not completed in time: {found:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `GET path` on the HTTP listener: (status, body).
    pub fn http_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.http).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: callvault\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    pub fn wav(&self, leg: &Value) -> audio::Wav {
        audio::Wav::read(&self.data_dir.join(leg["path"].as_str().unwrap()))
    }

    pub fn path_of(&self, leg: &Value) -> PathBuf {
        self.data_dir.join(leg["path"].as_str().unwrap())
    }

    /// Sends SIGTERM without waiting: the test goes on talking to the server while it drains.
    pub fn terminate(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    /// Sends SIGHUP (reload the configuration and the TLS certificate).
    pub fn hangup(&self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-HUP", &pid]).status();
    }

    /// Waits for the process to exit, failing the test if it takes longer than `wait`.
    pub fn wait_exit(&mut self, wait: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit within {wait:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a second `callvault serve` on this server's data directory, as an operator who
    /// started one twice would, and returns how it ended (it must not keep running).
    pub fn serve_again(&self) -> std::process::Output {
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--sip-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(["--rtp-ip", "127.0.0.1", "--rtp-ports", "39000-39099"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("a second server on the same data directory kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.wait_with_output().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `key=value` from a tracing line (or `"key": "value"` from a JSON one).
fn field(line: &str, key: &str) -> String {
    if line.starts_with('{') {
        let json: Value = serde_json::from_str(line).unwrap();
        return match &json[key] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
    }
    let pattern = format!("{key}=");
    let start = line
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {key}= in {line}"))
        + pattern.len();
    line[start..].split_whitespace().next().unwrap().to_owned()
}

/// A metric of a Prometheus text page, summed over its labels (PromQL's `sum(name)`).
pub fn metric(page: &str, name: &str) -> u64 {
    metrics::Metrics::parse(page).total(name) as u64
}

/// The leg with this label.
pub fn leg<'a>(recording: &'a Value, label: &str) -> &'a Value {
    recording["legs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["label"] == label)
        .unwrap_or_else(|| panic!("no leg {label} in {recording:#}"))
}
