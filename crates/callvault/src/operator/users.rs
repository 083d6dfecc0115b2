//! `callvault users …` and `callvault tokens …`: the people and scripts that use the API,
//! managed from the server's own shell (how the first admin comes to exist).

use std::fmt::Write as _;
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use callvault_catalog::{Error, NewUser, Role, TokenOptions};
use clap::{Args, Subcommand};

use super::{Missing, StorageArgs, actor, clip, esc, now, open, print_json, timestamp};

/// `users …`
#[derive(Subcommand)]
pub enum UsersCommand {
    /// Add a user (argon2id password: asked twice on the terminal, or read from stdin).
    Add(AddArgs),
    /// List every user.
    List(ListArgs),
    /// Disable a user: it can no longer sign in, and its tokens stop working.
    Disable(NameArgs),
}

/// `tokens …`
#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create a bearer token for a user; prints the token (and nothing else) on stdout.
    Create(CreateTokenArgs),
    /// List tokens (never their values), of one user or of all.
    List(ListTokensArgs),
    /// Revoke a token by its id (tok_…) or by its value (cv_…).
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub struct AddArgs {
    /// 1-64 characters of A-Z a-z 0-9 . _ @ -
    name: String,
    /// viewer (search, view, play), reviewer (+ annotate, score), compliance (+ download,
    /// lock, unlock, delete, pause, resume, audit), admin (everything, users).
    #[arg(long)]
    role: Role,
    /// Limit the user to this tenant's recordings (a [[tenants]] name).
    #[arg(long)]
    tenant: Option<String>,
    /// Read the password from standard input (one line) instead of asking on the terminal.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct NameArgs {
    name: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct CreateTokenArgs {
    /// The user the token acts as.
    name: String,
    /// What the token is for (shown by `tokens list`).
    #[arg(long)]
    label: Option<String>,
    /// The token stops working this many days from now (default: never).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
    expires_in: Option<u32>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct ListTokensArgs {
    /// Only this user's tokens.
    name: Option<String>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct RevokeArgs {
    /// The token's id (tok_…, as `tokens list` shows it) or the token itself (cv_…).
    id: String,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn users(command: UsersCommand) -> anyhow::Result<ExitCode> {
    match command {
        UsersCommand::Add(args) => add(args).await,
        UsersCommand::List(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let users = catalog.users().await;
            catalog.close().await;
            let users = users?;
            if args.json {
                print_json(&users)?;
            } else {
                print!("{}", users_table(&users));
            }
            Ok(ExitCode::SUCCESS)
        }
        UsersCommand::Disable(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let result = catalog.disable_user(&args.name, &actor(), now()).await;
            catalog.close().await;
            match result {
                Ok(user) => {
                    println!(
                        "disabled user {}: it cannot sign in and its tokens no longer work",
                        esc(&user.name)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::UnknownUser { .. }) => {
                    eprintln!("error: no user {}", esc(&args.name));
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

pub async fn tokens(command: TokensCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokensCommand::Create(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let at = now();
            let options = TokenOptions {
                label: args.label,
                expires_at: args
                    .expires_in
                    .map(|days| at + time::Duration::days(i64::from(days))),
            };
            let result = catalog
                .create_token_with(&args.name, &options, &actor(), at)
                .await;
            catalog.close().await;
            match result {
                Ok(token) => {
                    // Only the token on stdout: `TOKEN=$(callvault tokens create bob)`.
                    println!("{}", token.token);
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::UnknownUser { .. }) => {
                    eprintln!("error: no user {} (or it is disabled)", esc(&args.name));
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
        TokensCommand::List(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let tokens = catalog.tokens(args.name.as_deref()).await;
            catalog.close().await;
            let tokens = tokens?;
            if args.json {
                print_json(&tokens)?;
            } else {
                print!("{}", tokens_table(&tokens));
            }
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let result = catalog.revoke_token(&args.id, &actor(), now()).await;
            catalog.close().await;
            match result {
                Ok(token) => {
                    println!("revoked token {} of {}", esc(&token.id), esc(&token.user));
                    Ok(ExitCode::SUCCESS)
                }
                Err(Error::UnknownToken { id }) => {
                    eprintln!("error: no token {}", esc(&id));
                    Ok(ExitCode::from(2))
                }
                Err(e) => Err(e.into()),
            }
        }
    }
}

async fn add(args: AddArgs) -> anyhow::Result<ExitCode> {
    // Everything that can be refused without the password is refused before asking for it.
    let config = args.storage.load()?;
    if let Some(tenant) = &args.tenant
        && !config.tenants.iter().any(|rule| &rule.name == tenant)
    {
        eprintln!(
            "warning: no [[tenants]] rule of this configuration names tenant {}: the user will \
             see no recordings until recordings are matched to it",
            esc(tenant)
        );
    }
    let password = if args.password_stdin {
        read_password_stdin()?
    } else {
        ask_password(&args.name)?
    };
    if let Some(problem) = weak_password(&password, &args.name) {
        bail!("password refused: {problem}");
    }
    let (_, catalog) = open(&args.storage, Missing::Create).await?;
    let user = NewUser {
        name: args.name,
        password,
        role: args.role,
        tenant: args.tenant,
    };
    let result = catalog.add_user(&user, &actor(), now()).await;
    catalog.close().await;
    match result {
        Ok(user) => {
            println!(
                "added user {} with role {}{}",
                esc(&user.name),
                user.role,
                user.tenant
                    .as_deref()
                    .map(|t| format!(" in tenant {}", esc(t)))
                    .unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(Error::UserExists { name }) => {
            eprintln!("error: user {} already exists", esc(&name));
            Ok(ExitCode::FAILURE)
        }
        Err(e @ Error::InvalidInput { .. }) => {
            eprintln!("error: {}", esc(&e.to_string()));
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e.into()),
    }
}

/// The first line of standard input, without its line end.
fn read_password_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .context("reading the password from standard input")?;
    let line = input.lines().next().unwrap_or_default();
    Ok(line.to_owned())
}

/// Asked twice on the terminal, without echo.
fn ask_password(name: &str) -> anyhow::Result<String> {
    let no_terminal = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot ask for the password: no terminal ({e}); give it with --password-stdin"
        )
    };
    let first =
        rpassword::prompt_password(format!("Password for {}: ", esc(name))).map_err(no_terminal)?;
    let second = rpassword::prompt_password("Again: ").map_err(no_terminal)?;
    if first != second {
        bail!("the two passwords differ: nothing changed");
    }
    Ok(first)
}

/// Why `password` is too weak for `name`, if it is. zxcvbn estimates how many guesses it
/// takes (dictionary words, names, keyboard patterns, dates, repeats, the user name); below
/// score 3 (10^10 guesses) it is refused. Its length is checked first for a plain message.
fn weak_password(password: &str, name: &str) -> Option<String> {
    const MIN_CHARS: usize = 10;
    if password.is_empty() {
        return Some("the password is empty".to_owned());
    }
    if password.chars().count() < MIN_CHARS {
        return Some(format!("use at least {MIN_CHARS} characters"));
    }
    let entropy = zxcvbn::zxcvbn(password, &[name, "callvault"]);
    if entropy.score() >= zxcvbn::Score::Three {
        return None;
    }
    let mut why = String::from("too easy to guess");
    if let Some(feedback) = entropy.feedback() {
        if let Some(warning) = feedback.warning() {
            let _ = write!(why, " ({warning})");
        }
        for suggestion in feedback.suggestions() {
            let _ = write!(why, "; {suggestion}");
        }
    }
    why.push_str("; a passphrase of four or more random words is strong");
    Some(why)
}

fn users_table(users: &[callvault_catalog::User]) -> String {
    let mut out = format!(
        "{:<24}  {:<10}  {:<16}  {:<19}  DISABLED\n",
        "NAME", "ROLE", "TENANT", "CREATED"
    );
    for u in users {
        let _ = writeln!(
            out,
            "{:<24}  {:<10}  {:<16}  {:<19}  {}",
            clip(&u.name, 24),
            u.role,
            clip(u.tenant.as_deref().unwrap_or("-"), 16),
            timestamp(u.created_at),
            u.disabled_at
                .map(timestamp)
                .unwrap_or_else(|| "-".to_owned())
        );
    }
    if users.is_empty() {
        out.push_str("(no users)\n");
    }
    out
}

fn tokens_table(tokens: &[callvault_catalog::Token]) -> String {
    let mut out = format!(
        "{:<20}  {:<24}  {:<20}  {:<19}  {:<19}  {:<19}  REVOKED\n",
        "ID", "USER", "LABEL", "CREATED", "EXPIRES", "LAST USED"
    );
    for t in tokens {
        let _ = writeln!(
            out,
            "{:<20}  {:<24}  {:<20}  {:<19}  {:<19}  {:<19}  {}",
            clip(&t.id, 20),
            clip(&t.user, 24),
            clip(t.label.as_deref().unwrap_or("-"), 20),
            timestamp(t.created_at),
            t.expires_at
                .map(timestamp)
                .unwrap_or_else(|| "never".to_owned()),
            t.last_used_at
                .map(timestamp)
                .unwrap_or_else(|| "-".to_owned()),
            t.revoked_at
                .map(timestamp)
                .unwrap_or_else(|| "-".to_owned())
        );
    }
    if tokens.is_empty() {
        out.push_str("(no tokens)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        for (password, expected) in [
            ("", "empty"),
            ("short", "at least 10"),
            ("password123", "too easy to guess"),
            ("qwertyuiop", "too easy to guess"),
            ("aaaaaaaaaaaa", "too easy to guess"),
            ("alice-alice-2026", "too easy to guess"),
        ] {
            let why =
                weak_password(password, "alice").unwrap_or_else(|| panic!("{password:?} accepted"));
            assert!(why.contains(expected), "{password:?}: {why}");
        }
        for strong in ["correct horse battery staple", "Tr4ns-Mute.Quill#88"] {
            assert_eq!(weak_password(strong, "alice"), None, "{strong:?}");
        }
    }
}
