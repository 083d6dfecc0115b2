//! callvault — a SIP call recording server (SIPREC, RFC 7866).
//!
//! `callvault serve` records; `callvault check-config` checks what `serve` would start with
//! (see `check`); `callvault recordings|users|tokens|audit …` manage the catalog (see
//! `operator`). See README.md.

#![forbid(unsafe_code)]

mod archive;
mod check;
mod config;
mod driver;
mod health;
mod lock;
mod log;
mod media_plane;
mod metrics;
mod notify;
mod operator;
mod recorder;
mod recovery;
mod reload;
mod retention;
mod routes;
mod server;
mod sources;
mod storage;
mod systemd;
mod tenants;
mod test_call;
mod tls;
mod upload;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides, PortRange};
use crate::operator::StorageArgs;

#[derive(Parser)]
#[command(
    name = "callvault",
    version,
    about = "SIP call recording server (SIPREC, RFC 7866)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the recording server: SIP on UDP, TCP and TLS, RTP to WAV, the catalog, /health,
    /// /metrics. SIGHUP reloads the log filter, the allowed sources, the TLS certificate and
    /// the webhook receivers ([[notify]]).
    Serve(ServeArgs),
    /// Check a configuration as `serve` would load it (the file, CALLVAULT_* variables and the
    /// same flags), with its TLS certificate, data directory, RTP ports and database URL,
    /// binding and creating nothing; one line per check. Exits 1 if any check fails.
    CheckConfig(CheckArgs),
    /// Read and manage the catalog of recordings: list, show, lock, unlock, delete, verify.
    Recordings {
        #[command(subcommand)]
        command: operator::RecordingsCommand,
    },
    /// Users of the API: add, list, disable.
    Users {
        #[command(subcommand)]
        command: operator::users::UsersCommand,
    },
    /// Bearer tokens of the API's users: create, list, revoke.
    Tokens {
        #[command(subcommand)]
        command: operator::users::TokensCommand,
    },
    /// Pass-through routes of the configuration ([[routes]]): list.
    Routes {
        #[command(subcommand)]
        command: RoutesCommand,
    },
    /// Retention: `--dry-run` lists what is due now and why (policies, [retention] days and
    /// max_bytes; locked, never-expire and live recordings held), `run` deletes it.
    Retention(operator::retention::RetentionArgs),
    /// The hash-chained audit trail: verify, list.
    Audit {
        #[command(subcommand)]
        command: operator::audit::AuditCommand,
    },
    /// Take the server running on a data directory out of its recording-server group: new
    /// calls and OPTIONS get 503 (/ready too), calls in progress go on to their end. Signals
    /// the server (SIGUSR1; --cancel sends SIGUSR2). Stop it with SIGTERM once /health shows
    /// active_sessions 0.
    Drain(DrainArgs),
    /// Make a real SIPREC call to a recording server (two streams of tone, RFC 4733 digits),
    /// hang up, and print the recording id the server gives back.
    TestCall(test_call::TestCallArgs),
}

#[derive(Args)]
struct DrainArgs {
    /// The data directory of the server to drain ([storage] data_dir; default ./data).
    #[arg(long, env = "CALLVAULT_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// Take new calls again.
    #[arg(long)]
    cancel: bool,
}

#[derive(Subcommand)]
enum RoutesCommand {
    /// The [[routes]] as `serve` would load them, in match order: name, match keys, target,
    /// record, DTMF, tenant. Exits 1 when the configuration does not load.
    List {
        #[command(flatten)]
        config: ConfigArgs,
        /// One JSON object per route instead of the table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Check the configuration and exit, as `check-config` does.
    #[arg(long)]
    check: bool,
    /// With --check: connect to the catalog too.
    #[arg(long, requires = "check")]
    connect: bool,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    config: ConfigArgs,
    /// Connect to the catalog and report its schema version (read-only: nothing is created
    /// or migrated). Without it the database URL is only parsed.
    #[arg(long)]
    connect: bool,
}

/// What `serve` is configured with besides the file: flags and CALLVAULT_* variables.
#[derive(Args)]
struct ConfigArgs {
    /// This node's name in the catalog ([node] id; default the host name). Unique per node
    /// when several share one PostgreSQL catalog.
    #[arg(long, env = "CALLVAULT_NODE_ID")]
    node_id: Option<String>,
    /// A network allowed to send SIP, in CIDR notation (repeat for more; replaces
    /// [sip] allowed_sources; default loopback only). `0.0.0.0/0` and `::/0` allow everyone.
    #[arg(
        long = "allow-source",
        value_name = "CIDR",
        env = "CALLVAULT_ALLOW_SOURCES",
        value_delimiter = ','
    )]
    allow_sources: Vec<ipnet::IpNet>,
    /// SIP address, bound for both UDP and TCP ([sip] listen; default 0.0.0.0:5060).
    #[arg(long, env = "CALLVAULT_SIP_LISTEN")]
    sip_listen: Option<SocketAddr>,
    /// SIP over TLS address, usually port 5061 ([sip] tls_listen; default: no TLS). Needs
    /// --tls-cert and --tls-key.
    #[arg(long, env = "CALLVAULT_SIP_TLS_LISTEN")]
    sip_tls_listen: Option<SocketAddr>,
    /// Certificate chain for SIP over TLS, PEM, leaf first ([tls] cert_file).
    #[arg(long, env = "CALLVAULT_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key, PEM ([tls] key_file).
    #[arg(long, env = "CALLVAULT_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Address written into SDP answers, where clients send RTP ([media] rtp_ip).
    #[arg(long, env = "CALLVAULT_RTP_IP")]
    rtp_ip: Option<IpAddr>,
    /// RTP port range LO-HI ([media] rtp_ports; default 40000-49999).
    #[arg(long, env = "CALLVAULT_RTP_PORTS")]
    rtp_ports: Option<PortRange>,
    /// Conceal lost packets, true or false ([media] conceal_loss; default true). false keeps
    /// every loss as silence.
    #[arg(long, env = "CALLVAULT_CONCEAL_LOSS", value_name = "BOOL")]
    conceal_loss: Option<bool>,
    #[command(flatten)]
    storage: StorageArgs,
    /// HTTP address for /health and /metrics ([http] listen; default 127.0.0.1:8080).
    #[arg(long, env = "CALLVAULT_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Log lines as `text` (key=value) or `json` (one object per line) ([log] format).
    #[arg(long, value_name = "FORMAT", env = "CALLVAULT_LOG_FORMAT")]
    log_format: Option<log::LogFormat>,
    /// Which events are logged, e.g. `info` or `warn,callvault::recorder=debug` ([log]
    /// filter; default info). Set this way, SIGHUP does not change it.
    #[arg(long, value_name = "FILTER", env = "CALLVAULT_LOG")]
    log_filter: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("callvault")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // An error can quote what came from outside (an id, a label): escaped like the log,
            // and a database URL's password hidden like the log does.
            let text = format!("{e:#}");
            eprintln!("error: {}", log::escape(&log::redact_urls(&text)));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) if args.check => {
            init_logging("warn");
            let (file, overrides) = args.config.into_parts();
            Ok(check::run(file.as_deref(), &overrides, args.connect).await)
        }
        Command::Serve(args) => {
            let (file, overrides) = args.config.into_parts();
            // Before the log starts: the file says how it looks. An error here goes to
            // standard error as text, as every CLI error does.
            let (config, table) = Config::load_from(file.as_deref(), std::env::vars(), &overrides)?;
            let filter = log::init(config.log.format, &config.log.filter);
            let reload_from = server::ReloadFrom {
                file,
                overrides,
                table,
                filter,
            };
            server::serve(config, reload_from).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::CheckConfig(args) => {
            // Only what goes wrong reaches the log (unreadable system CA certificates); the
            // report itself is on standard output.
            init_logging("warn");
            let (file, overrides) = args.config.into_parts();
            Ok(check::run(file.as_deref(), &overrides, args.connect).await)
        }
        Command::Recordings { command } => operator::recordings(command).await,
        Command::Users { command } => operator::users::users(command).await,
        Command::Tokens { command } => operator::users::tokens(command).await,
        Command::Audit { command } => operator::audit::run(command).await,
        Command::Retention(args) => operator::retention::run(args).await,
        Command::Drain(args) => {
            let (pid, node) = lock::running_server(&args.data_dir)?;
            let signal = if args.cancel {
                rustix::process::Signal::USR2
            } else {
                rustix::process::Signal::USR1
            };
            let target = rustix::process::Pid::from_raw(pid)
                .ok_or_else(|| anyhow::anyhow!("pid {pid} in the lock file is not a process"))?;
            rustix::process::kill_process(target, signal)
                .map_err(|e| anyhow::anyhow!("signalling pid {pid}: {e}"))?;
            if args.cancel {
                println!("node {node} (pid {pid}) takes new calls again");
            } else {
                println!(
                    "node {node} (pid {pid}) is draining: new calls and OPTIONS get 503, calls in \
                     progress go on; stop it (SIGTERM) once /health shows active_sessions 0"
                );
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::TestCall(args) => {
            init_logging("warn");
            test_call::run(args).await
        }
        Command::Routes {
            command: RoutesCommand::List { config, json },
        } => {
            init_logging("warn");
            let (file, overrides) = config.into_parts();
            let config = Config::load(file.as_deref(), &overrides)?;
            print!("{}", routes::listing(&config.routes()?, json));
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}

impl ConfigArgs {
    /// The file to read, and what overrides its keys.
    fn into_parts(self) -> (Option<PathBuf>, Overrides) {
        let overrides = Overrides {
            node_id: self.node_id,
            allowed_sources: self.allow_sources,
            sip_listen: self.sip_listen,
            sip_tls_listen: self.sip_tls_listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            rtp_ip: self.rtp_ip,
            rtp_ports: self.rtp_ports,
            conceal_loss: self.conceal_loss,
            data_dir: self.storage.data_dir,
            database_url: self.storage.database_url,
            http_listen: self.http_listen,
            log_format: self.log_format,
            log_filter: self.log_filter,
        };
        (self.storage.config, overrides)
    }
}

/// The log of the commands but `serve`, as text on standard error; `CALLVAULT_LOG` (an
/// `EnvFilter`) overrides `default`.
fn init_logging(default: &str) {
    let filter = std::env::var("CALLVAULT_LOG").unwrap_or_else(|_| default.to_owned());
    log::init(log::LogFormat::Text, &filter);
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::path::PathBuf;

    #[test]
    fn the_cli_definition_is_consistent() {
        // Catches duplicate names and bad defaults at test time instead of at a user's start.
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_flags_parse() {
        let cli = Cli::try_parse_from([
            "callvault",
            "serve",
            "--sip-listen",
            "127.0.0.1:5070",
            "--rtp-ports",
            "30000-30100",
            "--config",
            "x.toml",
            "--sip-tls-listen",
            "0.0.0.0:5061",
            "--tls-cert",
            "/etc/callvault/cert.pem",
            "--tls-key",
            "/etc/callvault/key.pem",
        ])
        .unwrap();
        let Command::Serve(ServeArgs { config: args, .. }) = cli.command else {
            panic!("serve parsed as another command")
        };
        assert_eq!(args.sip_listen, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!(args.rtp_ports.map(|r| r.min), Some(30000));
        assert_eq!(args.storage.config, Some(PathBuf::from("x.toml")));
        assert_eq!(args.sip_tls_listen, Some("0.0.0.0:5061".parse().unwrap()));
        assert_eq!(
            args.tls_cert,
            Some(PathBuf::from("/etc/callvault/cert.pem"))
        );
        assert_eq!(args.tls_key, Some(PathBuf::from("/etc/callvault/key.pem")));
        assert!(Cli::try_parse_from(["callvault", "serve", "--rtp-ports", "9-3"]).is_err());
    }
}
