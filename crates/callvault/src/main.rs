//! callvault — a SIP call recording server (SIPREC, RFC 7866).
//!
//! `callvault serve` records; `callvault recordings|users|tokens|audit …` manage the catalog
//! (see `operator`). See README.md.

#![forbid(unsafe_code)]

mod archive;
mod config;
mod driver;
mod health;
mod lock;
mod log;
mod media_plane;
mod metrics;
mod operator;
mod recorder;
mod recovery;
mod server;
mod sources;
mod storage;
mod tenants;

use std::net::{IpAddr, SocketAddr};

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
    /// Run the recording server: SIP on UDP and TCP, RTP to WAV, the catalog, /health, /metrics.
    Serve(ServeArgs),
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
    /// The hash-chained audit trail: verify, list.
    Audit {
        #[command(subcommand)]
        command: operator::audit::AuditCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
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
    /// Address written into SDP answers, where clients send RTP ([media] rtp_ip).
    #[arg(long, env = "CALLVAULT_RTP_IP")]
    rtp_ip: Option<IpAddr>,
    /// RTP port range LO-HI ([media] rtp_ports; default 40000-49999).
    #[arg(long, env = "CALLVAULT_RTP_PORTS")]
    rtp_ports: Option<PortRange>,
    #[command(flatten)]
    storage: StorageArgs,
    /// HTTP address for /health and /metrics ([http] listen; default 127.0.0.1:8080).
    #[arg(long, env = "CALLVAULT_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
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
            // An error can quote what came from outside (an id, a label): escaped like the log.
            eprintln!("error: {}", log::escape(&format!("{e:#}")));
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            init_logging();
            let config = Config::load(
                args.storage.config.as_deref(),
                &Overrides {
                    node_id: args.node_id,
                    allowed_sources: args.allow_sources,
                    sip_listen: args.sip_listen,
                    rtp_ip: args.rtp_ip,
                    rtp_ports: args.rtp_ports,
                    data_dir: args.storage.data_dir,
                    database_url: args.storage.database_url,
                    http_listen: args.http_listen,
                },
            )?;
            server::serve(config).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Recordings { command } => operator::recordings(command).await,
        Command::Users { command } => operator::users::users(command).await,
        Command::Tokens { command } => operator::users::tokens(command).await,
        Command::Audit { command } => operator::audit::run(command).await,
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLVAULT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| log::Escaping(std::io::stderr()))
        .with_ansi(false)
        .init();
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
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("serve parsed as another command")
        };
        assert_eq!(args.sip_listen, Some("127.0.0.1:5070".parse().unwrap()));
        assert_eq!(args.rtp_ports.map(|r| r.min), Some(30000));
        assert_eq!(args.storage.config, Some(PathBuf::from("x.toml")));
        assert!(Cli::try_parse_from(["callvault", "serve", "--rtp-ports", "9-3"]).is_err());
    }
}
