//! `callvault-loadgen`: the load generator's command line (see the crate's documentation and
//! BENCHMARKS.md). `server` and `floor` print one run's figures (`name<TAB>value<TAB>unit`);
//! `summarize` turns the run directories `scripts/bench` keeps into a Markdown table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use callvault_bench::{CatalogAt, Figures, Plan, combine, run_floor, run_server, summary};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "callvault-loadgen",
    about = "SIPREC load generator and benchmark figures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SIPREC calls against a callvault server, every recording verified in its catalog.
    Server(ServerArgs),
    /// The same traffic to the floor receiver (floor/floor.c), which it starts and stops.
    Floor(FloorArgs),
    /// min / median / max over run directories holding floor-before.tsv, server.tsv and
    /// floor-after.tsv, as a Markdown table.
    Summarize { runs: Vec<PathBuf> },
}

#[derive(Args)]
struct Load {
    /// Concurrent calls (two PCMU streams each).
    #[arg(long, default_value_t = 100)]
    calls: u32,
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds of media per call.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Where the figures go (also printed).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct ServerArgs {
    #[command(flatten)]
    load: Load,
    /// The server's SIP address (UDP).
    #[arg(long, default_value = "127.0.0.1:5060")]
    to: SocketAddr,
    /// The server's process id, read in /proc for CPU, memory and writes.
    #[arg(long)]
    pid: Option<u32>,
    /// The server's data directory: its SQLite catalog and WAVs are verified.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The server's PostgreSQL catalog instead of SQLite (WAVs still under --data-dir).
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Args)]
struct FloorArgs {
    #[command(flatten)]
    load: Load,
    /// The floor receiver's binary (cc -O2 -o … floor/floor.c).
    #[arg(long)]
    floor: PathBuf,
    /// Its first port; it binds two per call.
    #[arg(long, default_value_t = 30_000)]
    port_base: u16,
    /// Where it writes its per-stream files.
    #[arg(long)]
    dir: PathBuf,
}

fn plan(load: &Load) -> Plan {
    Plan {
        calls: load.calls,
        rate: load.rate,
        seconds: load.seconds,
    }
}

fn emit(figures: &Figures, out: Option<&PathBuf>) -> anyhow::Result<()> {
    let text = figures.to_tsv();
    print!("{text}");
    if let Some(path) = out {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Server(args) => {
            let catalog = args.data_dir.as_ref().map(|dir| match &args.database_url {
                Some(url) => CatalogAt {
                    database_url: url.clone(),
                    data_dir: dir.clone(),
                },
                None => CatalogAt::sqlite(dir),
            });
            let (figures, outcomes, verified) =
                run_server(&plan(&args.load), args.to, args.pid, catalog.as_ref()).await?;
            emit(&figures, args.load.out.as_ref())?;
            for error in outcomes.iter().filter_map(|o| o.error.as_ref()).take(10) {
                eprintln!("call failed: {error}");
            }
            let mut good = outcomes.iter().all(|o| o.error.is_none());
            if let Some(v) = verified {
                for problem in &v.problems {
                    eprintln!("recording: {problem}");
                }
                good &= v.failed == 0 && v.recordings == u64::from(args.load.calls);
            }
            Ok(if good {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Floor(args) => {
            std::fs::create_dir_all(&args.dir)?;
            let figures =
                run_floor(&plan(&args.load), &args.floor, args.port_base, &args.dir).await?;
            emit(&figures, args.load.out.as_ref())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Summarize { runs } => {
            let mut all = Vec::new();
            for dir in &runs {
                let read = |name: &str| Figures::read(&dir.join(name));
                all.push(combine(
                    &read("server.tsv")?,
                    &read("floor-before.tsv")?,
                    &read("floor-after.tsv")?,
                ));
            }
            print!("{}", summary(&all));
            Ok(ExitCode::SUCCESS)
        }
    }
}
