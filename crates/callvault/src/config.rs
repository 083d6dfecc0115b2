//! Configuration: embedded defaults, overlaid by a TOML file (`--config`), overlaid by
//! `CALLVAULT_SECTION__KEY` environment variables (every key of the file, see [`env_overlay`]),
//! overlaid by flags and their own variables (`CALLVAULT_SIP_LISTEN`…; clap merges those two).
//! The result is one validated [`Config`]; each library crate then receives its own typed
//! settings built from it. Library crates never read files, environment variables or globals
//! themselves.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use ipnet::IpNet;
use serde::Deserialize;

use crate::log::LogFormat;
use crate::notify::{HooksConfig, NotifyTarget};
use crate::routes::{RouteRule, Routes};
use crate::tenants::{TenantRule, Tenants};

/// Every key of the TOML file. Sections mirror the flags: `--sip-listen` is `[sip] listen`.
/// `config/callvault.toml` documents each key; keep the two in step.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub sip: SipConfig,
    pub media: MediaSection,
    pub storage: StorageConfig,
    pub http: HttpConfig,
    pub tls: TlsSection,
    pub log: LogSection,
    /// `[api]`: reasons required before actions, download file names, sign-in settings.
    pub api: callvault_api::ApiSettings,
    /// `[retention]`: age and size limits for deployments without the API's policies, the
    /// audit period, how often the server sweeps.
    pub retention: callvault_api::RetentionSettings,
    /// `[[tenants]]`: which tenant a recording belongs to (see `tenants.rs`); tried in order,
    /// the first match wins.
    pub tenants: Vec<TenantRule>,
    /// `[[notify]]`: webhook receivers of recording events (see `notify`).
    pub notify: Vec<NotifyTarget>,
    /// `[hooks]`: the `on_complete` command.
    pub hooks: HooksConfig,
    /// `[[routes]]`: pass-through recording (see `routes.rs`); tried in order, the first match
    /// wins. None: every INVITE is a SIPREC recording session.
    pub routes: Vec<RouteRule>,
}

/// `[log]`: what the log shows and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` (key=value) or `json` (one object per line). Read at start only.
    pub format: LogFormat,
    /// Which events are logged: an `EnvFilter` (`info`, `warn,callvault::recorder=debug`).
    /// SIGHUP applies a new one; `CALLVAULT_LOG` (or `--log-filter`) overrides it.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's name in the catalog: a node marks only its own recordings (after a crash,
    /// for instance), so several nodes can share one PostgreSQL catalog. Unset: the host name.
    /// Must be unique among the nodes sharing a catalog.
    pub id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// UDP and TCP are both bound on this address.
    pub listen: SocketAddr,
    /// Largest SIP message accepted, in bytes (UDP datagrams and TCP frames alike).
    pub max_message_size: usize,
    /// Concurrent recording sessions on this node; the next INVITE gets 503 with Retry-After.
    pub max_sessions: usize,
    /// m-lines accepted in one offer; more get 488.
    pub max_streams: usize,
    /// Largest metadata document accepted, in bytes.
    pub max_metadata_bytes: usize,
    /// Concurrent TCP connections from recording clients.
    pub max_tcp_connections: usize,
    /// Concurrent TCP connections one source address may hold; past it a new one is closed
    /// at accept. 0: as many as `max_tcp_connections` (one SBC may carry a node's whole load).
    pub max_tcp_connections_per_source: usize,
    /// Hold the 200 OK this long after the INVITE. 0 (the default) answers at once; a delay
    /// gives the client time to CANCEL, which some SBC acceptance procedures exercise.
    pub answer_delay_ms: u64,
    /// Seconds a client is asked to wait (Retry-After) when the node is full.
    pub retry_after_secs: u32,
    /// Value of the User-Agent / Server headers.
    pub user_agent: String,
    /// Keep DTMF digits (RFC 4733 events and SIP INFO) in the catalog. Turn off where card
    /// numbers must not be stored; INFO is still answered 200.
    pub dtmf_capture: bool,
    /// Smallest session-timer interval accepted (RFC 4028 Min-SE), in seconds; a smaller
    /// Session-Expires gets 422. RFC 4028 says at least 90.
    pub min_session_expires_secs: u64,
    /// A call is ended with BYE this many seconds after its answer. 0: no limit.
    pub max_call_duration_secs: u64,
    /// A call whose every stream has been on hold this many seconds is ended with BYE. 0: no
    /// limit.
    pub max_hold_secs: u64,
    /// On SIGTERM, how long to wait for the answers to the BYEs sent to every session.
    pub shutdown_grace_secs: u64,
    /// RFC 3261 T1 (round-trip estimate), in milliseconds: retransmissions start at T1, a
    /// transaction gives up after 64*T1 (a 2xx never ACKed ends the call then).
    pub t1_ms: u64,
    /// Who may send SIP: networks in CIDR notation. Anything else is dropped before it is
    /// parsed (no transaction, port or file), counted and logged once a minute per source.
    pub allowed_sources: Vec<IpNet>,
    /// Concurrent sessions one source address may hold. 0: as many as `max_sessions` (one SBC
    /// may carry a node's whole load).
    pub max_sessions_per_source: usize,
    /// New INVITEs per second from one source address (a token bucket of as many); beyond it
    /// they get 503 with Retry-After. 0: no limit.
    pub max_invites_per_second_per_source: u32,
    /// DTMF digits kept per recording; later ones are counted, not stored.
    pub max_dtmf_per_recording: u32,
    /// Metadata revisions kept per recording; later ones are answered but not stored.
    pub max_metadata_revisions: u32,
    /// SIP over TLS listens here (TCP; usually port 5061) with the `[tls]` certificate.
    /// Unset: no TLS.
    pub tls_listen: Option<SocketAddr>,
}

/// `[tls]`: the certificate SIP over TLS presents and what it asks of peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    /// Our certificate chain, PEM, leaf first.
    pub cert_file: Option<PathBuf>,
    /// The leaf's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM, that sign the SBCs' certificates: client certificates are verified
    /// against them, and (with the system's roots) servers we connect to.
    pub client_ca_file: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `client_ca_file` (mutual TLS).
    pub require_client_cert: bool,
    /// When we connect to an SBC (a BYE whose connection has closed), its certificate must name
    /// the IP address we connect to. Off: its chain is still verified, not its name.
    pub verify_server_name: bool,
    /// A TLS handshake not completed in this many milliseconds is dropped.
    pub handshake_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSection {
    /// The address written into SDP answers: where recording clients send RTP.
    pub rtp_ip: Option<IpAddr>,
    /// The address RTP sockets bind to. Defaults to `rtp_ip` when that is a local address
    /// you can bind, else 0.0.0.0 (behind 1:1 NAT the advertised address is not local).
    pub bind_ip: Option<IpAddr>,
    /// Inclusive RTP port range, "LO-HI". Each stream takes an even port and the odd one above.
    pub rtp_ports: PortRange,
    /// Receive threads; streams are spread across them.
    pub receive_threads: usize,
    /// How long a sample position stays open for reordered packets, in milliseconds.
    pub jitter_window_ms: u64,
    /// A stream the SDP says is active that sends no RTP for this long (milliseconds) ends the
    /// recording with a BYE to the client. 0: never. Held (inactive) streams never time out.
    pub rtp_timeout_ms: u64,
    /// Formats with a higher sample rate are not accepted (declined, or another codec of the
    /// offer chosen): bounds what a call of silent streams writes to disk.
    pub max_sample_rate: u32,
    /// A stream takes RTP and RTCP only from the address of its SDP's `c=` line or of the SIP
    /// peer, and from the first source seen from them; anything else is counted and dropped.
    /// False: any source is recorded (NAT set-ups where media comes from a third address).
    pub bind_to_source: bool,
    /// Conceal lost packets (up to 60 ms per gap) with the codec's own concealment or waveform
    /// repetition. False: a lost packet stays silence in the WAV, the raw evidence.
    pub conceal_loss: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Recordings go under DATA/recordings/, the embedded catalog is DATA/callvault.db.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`. Empty: SQLite in the data directory.
    pub database_url: Option<String>,
    /// Below this many free bytes on the data directory's filesystem, new calls are refused
    /// (503). Unset: the smaller of 1 GiB and 5% of the filesystem.
    pub min_free_bytes: Option<u64>,
    /// The process umask, in octal: which permission bits files and folders created by callvault
    /// (recordings, the catalog, the spool) never get. "027": files 0640, folders 0750.
    pub umask: String,
    /// Where recordings end up: `local` (the data directory only) or `s3` (uploaded to an
    /// S3-compatible bucket once the call ends, the local copy removed after `local_grace_secs`).
    pub backend: StorageBackend,
    /// The bucket (`backend = "s3"`).
    pub bucket: Option<String>,
    /// Key prefix of every object; a recording's objects are `PREFIX/recordings/YYYY/MM/DD/ID/…`.
    pub prefix: String,
    /// The bucket's region; unset: `AWS_REGION`/`AWS_DEFAULT_REGION`, else us-east-1.
    pub region: Option<String>,
    /// A non-AWS endpoint (MinIO, Ceph RGW, Wasabi…), e.g. `https://s3.example.net:9000`.
    pub endpoint: Option<String>,
    /// Allow an `http://` endpoint (a local S3 server on a trusted network).
    pub allow_http: bool,
    /// How long a leg stays on the local disk after its upload (fast playback of recent calls);
    /// 0: removed at once.
    pub local_grace_secs: u64,
    /// How often the upload queue (in the catalog) is looked at.
    pub upload_interval_ms: u64,
    /// A failed upload is retried after this, doubling up to `upload_retry_max_ms`.
    pub upload_retry_initial_ms: u64,
    pub upload_retry_max_ms: u64,
}

/// `[storage] backend`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    #[default]
    Local,
    S3,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// The HTTP listener: `/health` and `/metrics`.
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub min: u16,
    pub max: u16,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 5060)),
            max_message_size: 65_535,
            max_sessions: 4_000,
            max_streams: 16,
            max_metadata_bytes: 256 * 1024,
            max_tcp_connections: 1_024,
            max_tcp_connections_per_source: 0,
            answer_delay_ms: 0,
            retry_after_secs: 5,
            user_agent: format!("callvault/{}", env!("CARGO_PKG_VERSION")),
            dtmf_capture: true,
            min_session_expires_secs: 90,
            max_call_duration_secs: 4 * 3600,
            max_hold_secs: 2 * 3600,
            shutdown_grace_secs: 5,
            t1_ms: 500,
            // Loopback only: an SBC's address must be allowed on purpose (serve says how).
            allowed_sources: vec![
                IpNet::V4(
                    ipnet::Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8)
                        .expect("8 is a valid IPv4 prefix length"),
                ),
                IpNet::from(IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)),
            ],
            max_sessions_per_source: 0,
            max_invites_per_second_per_source: 2_000,
            max_dtmf_per_recording: 10_000,
            max_metadata_revisions: 1_000,
            tls_listen: None,
        }
    }
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            require_client_cert: false,
            verify_server_name: true,
            handshake_timeout_ms: 10_000,
        }
    }
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            rtp_ip: None,
            bind_ip: None,
            rtp_ports: PortRange {
                min: 40_000,
                max: 49_999,
            },
            receive_threads: 2,
            jitter_window_ms: 200,
            rtp_timeout_ms: 60_000,
            max_sample_rate: 48_000,
            bind_to_source: true,
            conceal_loss: true,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: PathBuf::from("data"),
            database_url: None,
            min_free_bytes: None,
            umask: "027".to_owned(),
            backend: StorageBackend::Local,
            bucket: None,
            prefix: String::new(),
            region: None,
            endpoint: None,
            allow_http: false,
            local_grace_secs: 3600,
            upload_interval_ms: 1000,
            upload_retry_initial_ms: 1000,
            upload_retry_max_ms: 300_000,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (lo, hi) = s
            .split_once('-')
            .ok_or_else(|| format!("port range {s:?} is not LO-HI"))?;
        let min: u16 = lo
            .trim()
            .parse()
            .map_err(|_| format!("port range {s:?}: {lo:?} is not a port"))?;
        let max: u16 = hi
            .trim()
            .parse()
            .map_err(|_| format!("port range {s:?}: {hi:?} is not a port"))?;
        if min == 0 || min > max {
            return Err(format!("port range {s:?}: need 0 < LO <= HI"));
        }
        let range = PortRange { min, max };
        if range.pairs() == 0 {
            return Err(format!(
                "port range {s:?} holds no RTP/RTCP pair (an even port and the odd one above it)"
            ));
        }
        Ok(range)
    }
}

impl PortRange {
    /// RTP/RTCP pairs in the range: every even port `p` with `min <= p` and `p + 1 <= max`, as
    /// the media engine's port pool takes them (one pair per stream).
    pub fn pairs(&self) -> usize {
        let first = u32::from(self.min.max(2)).next_multiple_of(2);
        let max = u32::from(self.max);
        if first >= max {
            0
        } else {
            ((max - first - 1) / 2 + 1) as usize
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.min, self.max)
    }
}

/// Values given on the command line or in the environment; `None` leaves the file's value.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub node_id: Option<String>,
    /// `--allow-source`, repeatable: replaces `[sip] allowed_sources` when given.
    pub allowed_sources: Vec<IpNet>,
    pub sip_listen: Option<SocketAddr>,
    pub sip_tls_listen: Option<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub rtp_ip: Option<IpAddr>,
    pub rtp_ports: Option<PortRange>,
    pub conceal_loss: Option<bool>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub http_listen: Option<SocketAddr>,
    pub log_format: Option<LogFormat>,
    /// `--log-filter` / `CALLVAULT_LOG`.
    pub log_filter: Option<String>,
}

/// The prefix of the variables that set a key of the file: `CALLVAULT_SIP__MAX_SESSIONS`.
const ENV_PREFIX: &str = "CALLVAULT_";
/// Between section and key (and between nested tables): two underscores, since keys hold one.
const ENV_SEPARATOR: &str = "__";

impl Config {
    /// Defaults, then the file (if any), then `CALLVAULT_SECTION__KEY` variables, then the
    /// overrides; validated.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        Self::load_from(file, std::env::vars(), overrides).map(|(config, _)| config)
    }

    /// As [`Config::load`], with the environment given, and also returning the keys as the
    /// file and the variables set them (what SIGHUP compares to say what changed).
    pub fn load_from(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> anyhow::Result<(Config, toml::Table)> {
        let (mut table, text) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                let table: toml::Table = text
                    .parse()
                    .with_context(|| format!("config file {}", path.display()))?;
                (table, Some((path, text)))
            }
            None => (toml::Table::new(), None),
        };
        let from_env = env_overlay(&mut table, vars)?;
        let mut config: Config = match (&text, from_env.is_empty()) {
            // Parsed from the text itself, so that an error quotes the file's line.
            (Some((path, text)), true) => {
                toml::from_str(text).with_context(|| format!("config file {}", path.display()))?
            }
            (file, _) => toml::Value::Table(table.clone())
                .try_into()
                .with_context(|| {
                    let file = file
                        .as_ref()
                        .map(|(path, _)| format!("config file {} with ", path.display()))
                        .unwrap_or_default();
                    format!("{file}environment variables {}", from_env.join(", "))
                })?,
        };
        config.apply(overrides);
        config.validate()?;
        Ok((config, table))
    }

    fn apply(&mut self, o: &Overrides) {
        if let Some(v) = &o.node_id {
            self.node.id = Some(v.clone());
        }
        if !o.allowed_sources.is_empty() {
            self.sip.allowed_sources = o.allowed_sources.clone();
        }
        if let Some(v) = o.sip_listen {
            self.sip.listen = v;
        }
        if let Some(v) = o.sip_tls_listen {
            self.sip.tls_listen = Some(v);
        }
        if let Some(v) = &o.tls_cert {
            self.tls.cert_file = Some(v.clone());
        }
        if let Some(v) = &o.tls_key {
            self.tls.key_file = Some(v.clone());
        }
        if let Some(v) = o.rtp_ip {
            self.media.rtp_ip = Some(v);
        }
        if let Some(v) = o.rtp_ports {
            self.media.rtp_ports = v;
        }
        if let Some(v) = o.conceal_loss {
            self.media.conceal_loss = v;
        }
        if let Some(v) = &o.data_dir {
            self.storage.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            self.storage.database_url = Some(v.clone()).filter(|s| !s.is_empty());
        }
        if let Some(v) = o.http_listen {
            self.http.listen = v;
        }
        if let Some(v) = o.log_format {
            self.log.format = v;
        }
        if let Some(v) = &o.log_filter {
            self.log.filter = v.clone();
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.api.validate()?;
        self.retention.validate()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            bail!("[log] filter {:?}: {e}", self.log.filter);
        }
        if let Some(id) = &self.node.id
            && (id.is_empty()
                || id.len() > 64
                || id.chars().any(|c| c.is_control() || c.is_whitespace()))
        {
            bail!("[node] id {id:?}: give 1 to 64 printable characters without spaces");
        }
        if self.sip.max_sessions == 0 {
            bail!("[sip] max_sessions must be at least 1");
        }
        if self.sip.max_streams == 0 {
            bail!("[sip] max_streams must be at least 1");
        }
        if self.sip.max_message_size < 1_024 {
            bail!("[sip] max_message_size below 1024 bytes cannot carry a SIPREC INVITE");
        }
        if self.sip.min_session_expires_secs == 0 {
            bail!("[sip] min_session_expires_secs must be at least 1 (RFC 4028 says 90)");
        }
        if self.umask().is_none() {
            bail!(
                "[storage] umask {:?} is not an octal mask like \"027\"",
                self.storage.umask
            );
        }
        if self.storage.backend == StorageBackend::S3
            && self
                .storage
                .bucket
                .as_deref()
                .is_none_or(|b| b.trim().is_empty())
        {
            bail!("[storage] backend = \"s3\" needs a bucket");
        }
        if self.storage.upload_interval_ms == 0
            || self.storage.upload_retry_initial_ms == 0
            || self.storage.upload_retry_max_ms < self.storage.upload_retry_initial_ms
        {
            bail!(
                "[storage] upload_interval_ms and upload_retry_initial_ms must be at least 1, \
                 upload_retry_max_ms at least upload_retry_initial_ms"
            );
        }
        if !(50..=4_000).contains(&self.sip.t1_ms) {
            bail!("[sip] t1_ms must be between 50 and 4000 (RFC 3261 recommends 500)");
        }
        if let Some(tls) = self.sip.tls_listen {
            if self.tls.cert_file.is_none() || self.tls.key_file.is_none() {
                bail!(
                    "[sip] tls_listen needs a certificate and its key: set [tls] cert_file and \
                     key_file (--tls-cert, --tls-key)"
                );
            }
            if tls.port() != 0 && tls == self.sip.listen {
                bail!(
                    "[sip] tls_listen {tls} is taken by [sip] listen (UDP and TCP): use another port, usually 5061"
                );
            }
        }
        if self.tls.require_client_cert && self.tls.client_ca_file.is_none() {
            bail!(
                "[tls] require_client_cert needs client_ca_file: the CA certificates that sign \
                 the SBCs' certificates"
            );
        }
        if self.tls.handshake_timeout_ms == 0 {
            bail!("[tls] handshake_timeout_ms must be at least 1");
        }
        if self.media.max_sample_rate < 8_000 {
            bail!("[media] max_sample_rate below 8000 would refuse every codec");
        }
        if self.media.receive_threads == 0 {
            bail!("[media] receive_threads must be at least 1");
        }
        if let Some(ip) = self.media.rtp_ip
            && ip.is_unspecified()
        {
            bail!("[media] rtp_ip {ip} cannot be written into SDP: give the address clients reach");
        }
        self.tenants()?;
        crate::notify::settings::validate(&self.notify, &self.hooks)?;
        self.routes()?;
        Ok(())
    }

    /// Who may send SIP: `[sip] allowed_sources` and every route's target (it answers our
    /// INVITEs and sends in-dialog requests: trusted as an SBC is).
    pub fn sip_sources(&self) -> Vec<IpNet> {
        self.sip_sources_with(&self.sip.allowed_sources)
    }

    /// `allowed` and every route's target: what a SIGHUP that changes `[sip] allowed_sources`
    /// installs (the routes themselves change only at the next start).
    pub fn sip_sources_with(&self, allowed: &[IpNet]) -> Vec<IpNet> {
        let mut sources = allowed.to_vec();
        if let Ok(routes) = self.routes() {
            sources.extend(routes.iter().map(|r| IpNet::from(r.target_peer.addr.ip())));
        }
        sources
    }

    /// The `[[routes]]`, compiled (validated at load, so this fails only there).
    pub fn routes(&self) -> anyhow::Result<Routes> {
        Routes::new(&self.routes)
    }

    /// The `[[tenants]]` rules, compiled (validated at load, so this fails only there).
    pub fn tenants(&self) -> anyhow::Result<Tenants> {
        Tenants::new(&self.tenants)
    }

    /// The address written into SDP: `rtp_ip`, else the SIP listen address when it is a
    /// specific one, else loopback (fine on one machine; `serve` warns about it).
    pub fn advertised_rtp_ip(&self) -> IpAddr {
        self.media.rtp_ip.unwrap_or_else(|| {
            let sip = self.sip.listen.ip();
            if sip.is_unspecified() {
                IpAddr::V4(Ipv4Addr::LOCALHOST)
            } else {
                sip
            }
        })
    }

    pub fn rtp_bind_ip(&self) -> IpAddr {
        self.media.bind_ip.unwrap_or_else(|| {
            let advertised = self.advertised_rtp_ip();
            if advertised.is_loopback() || self.sip.listen.ip() == advertised {
                advertised
            } else {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }
        })
    }

    /// The umask as bits (at most 0o777).
    pub fn umask(&self) -> Option<u32> {
        u32::from_str_radix(self.storage.umask.trim(), 8)
            .ok()
            .filter(|bits| *bits <= 0o777)
    }

    /// Sets the process umask from `[storage] umask` (validated at load): what callvault
    /// creates from now on — recordings, the catalog, the spool — gets no more than it allows.
    pub fn apply_umask(&self) {
        if let Some(bits) = self.umask() {
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(bits));
        }
    }

    /// What `serve` warns about at start (and `check-config` reports): settings that load but
    /// probably do not do what a deployment wants.
    /// Each is (what it is about, the warning).
    pub fn warnings(&self) -> Vec<(&'static str, &'static str)> {
        let mut warnings = Vec::new();
        let listens_beyond_loopback = !self.sip.listen.ip().is_loopback();
        if self.advertised_rtp_ip().is_loopback() && listens_beyond_loopback {
            warnings.push((
                "rtp",
                "SDP answers advertise a loopback RTP address: remote clients cannot send media; set --rtp-ip",
            ));
        }
        if self.only_loopback_allowed() && listens_beyond_loopback {
            warnings.push((
                "sip",
                "SIP is taken from this host only: allow your SBCs with --allow-source CIDR (repeatable) or [sip] allowed_sources = [\"192.0.2.0/24\"]; everything else is dropped",
            ));
        }
        warnings
    }

    /// Whether anything beyond this host may send SIP (a startup warning names the way out
    /// when it may not, on a server listening beyond loopback).
    pub fn only_loopback_allowed(&self) -> bool {
        self.sip.allowed_sources.iter().all(|net| match net {
            IpNet::V4(net) => net.network().is_loopback(),
            IpNet::V6(net) => net.network().is_loopback(),
        })
    }

    /// `[node] id`, else the host name.
    pub fn node_id(&self) -> String {
        self.node.id.clone().unwrap_or_else(|| {
            let name = rustix::system::uname();
            let host = name.nodename().to_string_lossy().into_owned();
            if host.is_empty() {
                "callvault".to_owned()
            } else {
                host
            }
        })
    }

    pub fn database_url(&self) -> String {
        match &self.storage.database_url {
            Some(url) => url.clone(),
            None => callvault_catalog::Catalog::sqlite_url(&self.storage.data_dir),
        }
    }

    /// The bucket's settings with `backend = "s3"` (the `AWS_*` variables of `environment`
    /// carry the credentials); `None` for the local backend.
    pub fn s3_settings(
        &self,
        environment: impl Iterator<Item = (String, String)>,
    ) -> Option<callvault_objects::S3Settings> {
        (self.storage.backend == StorageBackend::S3).then(|| callvault_objects::S3Settings {
            bucket: self.storage.bucket.clone().unwrap_or_default(),
            prefix: self.storage.prefix.clone(),
            region: self.storage.region.clone(),
            endpoint: self.storage.endpoint.clone(),
            allow_http: self.storage.allow_http,
            environment: environment.filter(|(k, _)| k.starts_with("AWS_")).collect(),
        })
    }

    pub fn answer_delay(&self) -> Duration {
        Duration::from_millis(self.sip.answer_delay_ms)
    }

    pub fn max_call_duration(&self) -> Option<Duration> {
        (self.sip.max_call_duration_secs > 0)
            .then(|| Duration::from_secs(self.sip.max_call_duration_secs))
    }

    pub fn max_hold(&self) -> Option<Duration> {
        (self.sip.max_hold_secs > 0).then(|| Duration::from_secs(self.sip.max_hold_secs))
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.tls.handshake_timeout_ms)
    }

    pub fn rtp_timeout(&self) -> Option<Duration> {
        (self.media.rtp_timeout_ms > 0).then(|| Duration::from_millis(self.media.rtp_timeout_ms))
    }
}

/// Sets, in `table` (the file's keys), every key named by a `CALLVAULT_SECTION__KEY` variable
/// of `vars`: `CALLVAULT_SIP__MAX_SESSIONS=200` is `[sip] max_sessions = 200`, and
/// `CALLVAULT_API__REASONS='["audit", "dispute"]'` an array. A value is read as a TOML value
/// when it is one (a number, a boolean, an array, an inline table, a quoted string) and as a
/// string otherwise (`0.0.0.0:5060`, `postgres://…`, `027`). Returns the variables applied.
/// Variables without the double underscore (`CALLVAULT_LOG`, `CALLVAULT_SIP_LISTEN`) are the
/// flags' own and are left alone. Unknown keys are refused later, naming them, as in the file.
pub fn env_overlay(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<Vec<String>> {
    let mut applied: Vec<(String, String)> = vars
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    // The same order whatever the environment's.
    applied.sort();
    for (name, value) in &applied {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        if path.iter().any(String::is_empty) {
            bail!("{name}: a variable names a key as CALLVAULT_SECTION__KEY");
        }
        let (key, sections) = path.split_last().expect("split gives at least one part");
        let mut at = &mut *table;
        for section in sections {
            let entry = at
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            at = match entry {
                toml::Value::Table(inner) => inner,
                _ => bail!("{name}: {section} is not a section"),
            };
        }
        at.insert(key.clone(), env_value(value));
    }
    Ok(applied.into_iter().map(|(name, _)| name).collect())
}

/// A variable's text as a TOML value, or as a string when it is not one.
fn env_value(text: &str) -> toml::Value {
    let parsed = format!("value = {text}")
        .parse::<toml::Table>()
        .ok()
        .filter(|table| table.len() == 1)
        .and_then(|mut table| table.remove("value"));
    parsed.unwrap_or_else(|| toml::Value::String(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn every_key_can_come_from_the_environment_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sip]\nlisten = \"127.0.0.1:5070\"\nmax_sessions = 10\n",
        )
        .unwrap();
        let (config, _) = Config::load_from(
            Some(&path),
            vars(&[
                ("CALLVAULT_SIP__MAX_SESSIONS", "200"),
                (
                    "CALLVAULT_SIP__ALLOWED_SOURCES",
                    "[\"10.0.0.0/8\", \"192.0.2.0/24\"]",
                ),
                ("CALLVAULT_SIP__DTMF_CAPTURE", "false"),
                ("CALLVAULT_MEDIA__RTP_PORTS", "30000-30099"),
                ("CALLVAULT_MEDIA__RTP_IP", "192.0.2.1"),
                ("CALLVAULT_STORAGE__DATABASE_URL", "postgres://cv@db/cv"),
                ("CALLVAULT_STORAGE__UMASK", "077"),
                ("CALLVAULT_NODE__ID", "\"42\""),
                ("CALLVAULT_HTTP__LISTEN", "0.0.0.0:9090"),
                ("CALLVAULT_LOG__FORMAT", "json"),
                ("CALLVAULT_LOG__FILTER", "warn,callvault=debug"),
                ("CALLVAULT_TLS__HANDSHAKE_TIMEOUT_MS", "2500"),
                ("CALLVAULT_API__REASONS", "[\"audit\"]"),
                // Not config keys: the flags' own variables and other programs'.
                ("CALLVAULT_LOG", "debug"),
                ("CALLVAULT_SIP_LISTEN", "nonsense"),
                ("PATH", "/usr/bin"),
            ]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(
            config.sip.listen,
            "127.0.0.1:5070".parse().unwrap(),
            "file kept"
        );
        assert_eq!(
            config.sip.max_sessions, 200,
            "the variable wins over the file"
        );
        assert_eq!(config.sip.allowed_sources.len(), 2);
        assert!(!config.sip.dtmf_capture);
        assert_eq!(config.media.rtp_ports.min, 30000);
        assert_eq!(config.media.rtp_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(config.database_url(), "postgres://cv@db/cv");
        assert_eq!(config.umask(), Some(0o077), "027-like masks stay strings");
        assert_eq!(config.node.id.as_deref(), Some("42"), "quoted: a string");
        assert_eq!(config.http.listen, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.filter, "warn,callvault=debug");
        assert_eq!(config.tls.handshake_timeout_ms, 2500);
        assert_eq!(config.api.reasons, ["audit"]);

        // Flags win over both.
        let (config, _) = Config::load_from(
            None,
            vars(&[
                ("CALLVAULT_SIP__MAX_SESSIONS", "200"),
                ("CALLVAULT_LOG__FORMAT", "json"),
            ]),
            &Overrides {
                log_format: Some(LogFormat::Text),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            config.sip.max_sessions, 200,
            "no file: the variable still applies"
        );
        assert_eq!(config.log.format, LogFormat::Text);
    }

    #[test]
    fn a_bad_variable_is_refused_naming_it() {
        for (name, value, expect) in [
            ("CALLVAULT_SIP__LISTN", "127.0.0.1:5060", "listn"),
            (
                "CALLVAULT_SIP__MAX_SESSIONS",
                "many",
                "CALLVAULT_SIP__MAX_SESSIONS",
            ),
            ("CALLVAULT_NOSUCH__KEY", "1", "nosuch"),
            ("CALLVAULT_LOG__FORMAT", "xml", "xml"),
            ("CALLVAULT_LOG__FILTER", "callvault=loud", "[log] filter"),
            ("CALLVAULT_SIP____X", "1", "CALLVAULT_SIP____X"),
        ] {
            let err = Config::load_from(None, vars(&[(name, value)]), &Overrides::default())
                .map(|_| ())
                .unwrap_err();
            let text = format!("{err:#}");
            assert!(text.contains(expect), "{name}={value}: {text}");
        }
    }

    #[test]
    fn port_range_parses_and_rejects() {
        assert_eq!(
            "10000-10100".parse::<PortRange>().unwrap(),
            PortRange {
                min: 10000,
                max: 10100
            }
        );
        for bad in [
            "",
            "10000",
            "20-10",
            "0-100",
            "a-b",
            "5000-5000",
            "1-70000",
            // Two ports, but not an even one and the odd one above it.
            "5001-5002",
            "65535-65535",
        ] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad:?} accepted");
        }
        for (range, pairs) in [
            ("40000-49999", 5000),
            ("40000-40001", 1),
            ("40000-40002", 1),
            ("40001-40004", 1),
            ("40001-40005", 2),
            ("1-3", 1),
            ("65534-65535", 1),
        ] {
            assert_eq!(
                range.parse::<PortRange>().unwrap().pairs(),
                pairs,
                "{range}"
            );
        }
    }

    #[test]
    fn the_example_file_loads_and_documents_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/callvault.toml");
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        // The example spells out the defaults; a drift between the two is a doc bug.
        let defaults = Config::default();
        assert_eq!(config.sip.listen, defaults.sip.listen);
        assert_eq!(config.sip.max_sessions, defaults.sip.max_sessions);
        assert_eq!(config.media.rtp_ports, defaults.media.rtp_ports);
        assert!(config.media.bind_to_source && defaults.media.bind_to_source);
        assert!(config.media.conceal_loss && defaults.media.conceal_loss);
        assert_eq!(config.storage.data_dir, defaults.storage.data_dir);
        assert_eq!(config.http.listen, defaults.http.listen);
        assert_eq!(config.sip.tls_listen, defaults.sip.tls_listen);
        assert_eq!(config.tls.cert_file, defaults.tls.cert_file);
        assert_eq!(
            config.tls.require_client_cert,
            defaults.tls.require_client_cert
        );
        assert_eq!(
            config.tls.verify_server_name,
            defaults.tls.verify_server_name
        );
        assert_eq!(
            config.tls.handshake_timeout_ms,
            defaults.tls.handshake_timeout_ms
        );
        assert_eq!(config.hooks, defaults.hooks);
        assert!(config.notify.is_empty());
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sip]\nlisten = \"127.0.0.1:5070\"\n[media]\nrtp_ports = \"30000-30099\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            rtp_ports: Some("31000-31099".parse().unwrap()),
            conceal_loss: Some(false),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), &overrides).unwrap();
        assert_eq!(config.sip.listen, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(config.media.rtp_ports.min, 31000);
        assert!(!config.media.conceal_loss);
        assert_eq!(
            config.advertised_rtp_ip(),
            "127.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn tenants_load_in_order_and_a_bad_pattern_refuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[tenants]]\nname = \"acme\"\nrequest_user = \"^acme-\"\n\n\
             [[tenants]]\nname = \"globex\"\nsource = \"198.51.100.0/24\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path), &Overrides::default()).unwrap();
        let tenants = config.tenants().unwrap();
        let ip = "198.51.100.9".parse().unwrap();
        assert_eq!(tenants.tenant_of("sip:acme-1@srs", ip), Some("acme"));
        assert_eq!(tenants.tenant_of("sip:x@srs", ip), Some("globex"));

        std::fs::write(
            &path,
            "[[tenants]]\nname = \"acme\"\nrequest_user = \"[\"\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            Config::load(Some(&path), &Overrides::default()).unwrap_err()
        );
        assert!(
            err.contains("[[tenants]] #1") && err.contains("request_user"),
            "{err}"
        );
        std::fs::write(
            &path,
            "[[tenants]]\nname = \"acme\"\nsourc = \"10.0.0.0/8\"\n",
        )
        .unwrap();
        let err = format!(
            "{:#}",
            Config::load(Some(&path), &Overrides::default()).unwrap_err()
        );
        assert!(err.contains("sourc"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[sip]\nlisten_addr = \"127.0.0.1:5070\"\n").unwrap();
        let err = format!(
            "{:#}",
            Config::load(Some(&path), &Overrides::default()).unwrap_err()
        );
        assert!(err.contains("listen_addr"), "{err}");
        std::fs::write(&path, "[media]\nrtp_ip = \"0.0.0.0\"\n").unwrap();
        let err = format!(
            "{:#}",
            Config::load(Some(&path), &Overrides::default()).unwrap_err()
        );
        assert!(err.contains("rtp_ip"), "{err}");
    }

    #[test]
    fn tls_flags_override_the_file_and_incomplete_tls_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[sip]\ntls_listen = \"0.0.0.0:5061\"\n[tls]\ncert_file = \"a.pem\"\nkey_file = \"a.key\"\n\
             client_ca_file = \"ca.pem\"\nrequire_client_cert = true\n",
        )
        .unwrap();
        let overrides = Overrides {
            sip_tls_listen: Some("127.0.0.1:5071".parse().unwrap()),
            tls_cert: Some(PathBuf::from("b.pem")),
            ..Overrides::default()
        };
        let config = Config::load(Some(&path), &overrides).unwrap();
        assert_eq!(
            config.sip.tls_listen,
            Some("127.0.0.1:5071".parse().unwrap())
        );
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("b.pem")));
        assert_eq!(config.tls.key_file, Some(PathBuf::from("a.key")));
        assert!(config.tls.require_client_cert);

        for (toml, key) in [
            ("[sip]\ntls_listen = \"0.0.0.0:5061\"\n", "cert_file"),
            (
                "[sip]\ntls_listen = \"0.0.0.0:5061\"\n[tls]\ncert_file = \"a.pem\"\n",
                "key_file",
            ),
            ("[tls]\nrequire_client_cert = true\n", "client_ca_file"),
            (
                "[sip]\nlisten = \"0.0.0.0:5070\"\ntls_listen = \"0.0.0.0:5070\"\n\
                 [tls]\ncert_file = \"a\"\nkey_file = \"b\"\n",
                "5061",
            ),
        ] {
            std::fs::write(&path, toml).unwrap();
            let err = format!(
                "{:#}",
                Config::load(Some(&path), &Overrides::default()).unwrap_err()
            );
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
