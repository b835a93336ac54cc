//! The command line: `run`, `check`, `keygen`, `hash-key`, `demo`.

mod check;

pub use check::summary;

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::api_key::{self, ApiKey};
use crate::policy;
use crate::policy::store::Store;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, Parser)]
#[command(
    name = "mcpwarden",
    version,
    about = "An authenticating reverse proxy and policy sidecar for MCP servers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// One line per request on stderr, in the log format (target `mcpwarden::access`).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = Switch::On,
        env = "MCPWARDEN_ACCESS_LOG"
    )]
    pub access_log: Switch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Run {
        /// The policy file [default: ./policy.yaml, else $MCPWARDEN_POLICY]
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Validate a policy without running; print a summary, or every error as FILE:LINE:COL.
    Check {
        /// The policy file [default: ./policy.yaml, else $MCPWARDEN_POLICY]
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Print a new key (once, on the first line) and the policy entry to paste for it.
    Keygen {
        /// The workspace the key belongs to.
        #[arg(long)]
        workspace: String,
        /// The key's id: names it in logs, metrics and /usage.
        #[arg(long)]
        id: String,
        /// Narrow the key to these scopes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// When the key stops working: a UTC day (2026-12-01) or an RFC 3339 timestamp.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Print the policy line (`sha256: …`) for a key given as argument or on stdin.
    HashKey {
        /// The key; omit it to read from stdin and keep it out of shell history.
        key: Option<String>,
    },
    /// Start the gateway in front of a built-in demo MCP server, with demo keys.
    Demo {
        /// Where the gateway listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Where the admin endpoints listen.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin_listen: std::net::SocketAddr,
    },
}

/// Runs a parsed command; the return value is the process's exit code.
pub fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run { policy } => run(&policy_path(policy)?),
        Command::Check { policy } => Ok(check::check(&policy_path(policy)?)),
        Command::Keygen {
            workspace,
            id,
            scopes,
            expires,
        } => keygen(&workspace, &id, &scopes, expires.as_deref()),
        Command::HashKey { key } => hash_key(key),
        Command::Demo {
            listen,
            admin_listen,
        } => demo(listen, admin_listen),
    }
}

/// `--policy`, else `./policy.yaml` when it exists, else `$MCPWARDEN_POLICY`.
fn policy_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(path) = flag {
        return Ok(path);
    }
    let local = PathBuf::from("policy.yaml");
    if local.exists() {
        return Ok(local);
    }
    match std::env::var_os("MCPWARDEN_POLICY") {
        Some(path) => Ok(PathBuf::from(path)),
        None => {
            bail!("no policy: pass --policy FILE, or put policy.yaml here, or set MCPWARDEN_POLICY")
        }
    }
}

fn run(path: &Path) -> anyhow::Result<i32> {
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(path, metrics.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::server::run(Arc::new(store), metrics, Vec::new())?;
    Ok(0)
}

fn keygen(
    workspace: &str,
    id: &str,
    scopes: &[String],
    expires: Option<&str>,
) -> anyhow::Result<i32> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    if !name_ok(workspace) || !name_ok(id) {
        bail!("--workspace and --id take letters, digits, '.', '_' and '-'");
    }
    if let Some(date) = expires {
        policy::units::parse_date(date).map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    }
    let key = ApiKey::generate();
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let mut out = format!(
        "{}\n# paste under workspaces.{workspace}.keys:\n- id: {id}\n  sha256: {}\n  created: {today}\n",
        key.expose(),
        hex::encode(key.hash()),
    );
    if !scopes.is_empty() {
        out.push_str(&format!("  scopes: [{}]\n", scopes.join(", ")));
    }
    if let Some(date) = expires {
        out.push_str(&format!("  expires: {date}\n"));
    }
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(0)
}

fn hash_key(key: Option<String>) -> anyhow::Result<i32> {
    let key = match key {
        Some(k) => k,
        None => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the key from stdin")?;
            line.trim().to_owned()
        }
    };
    if let Err(e) = api_key::check_format(&key) {
        eprintln!("not a mcpwarden key: {e}");
        return Ok(1);
    }
    println!("sha256: {}", api_key::hash_hex(&key));
    Ok(0)
}

fn demo(listen: std::net::SocketAddr, admin: std::net::SocketAddr) -> anyhow::Result<i32> {
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")?;
    upstream.set_nonblocking(true)?;
    let setup = crate::demo::demo_setup(listen, admin, upstream.local_addr()?);
    let folder = std::env::temp_dir().join(format!("mcpwarden-demo-{}", std::process::id()));
    std::fs::create_dir_all(&folder)?;
    let path = folder.join("policy.yaml");
    std::fs::write(&path, &setup.policy_yaml)?;
    let metrics = Arc::new(Metrics::new());
    let store = Store::open(&path, metrics.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", crate::demo::banner(&setup, listen, admin));
    println!(
        "The demo policy is {} (edit it: changes apply live).\n",
        path.display()
    );
    let serve_upstream: crate::server::SideTask = Box::pin(async move {
        let listener = tokio::net::TcpListener::from_std(upstream).expect("a bound listener");
        if let Err(e) = crate::demo::serve(listener, std::future::pending()).await {
            tracing::error!("demo MCP server stopped: {e}");
        }
    });
    crate::server::run(Arc::new(store), metrics, vec![serve_upstream])?;
    Ok(0)
}
