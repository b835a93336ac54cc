//! The `mcpwarden` binary: parses the command line and hands over to the library.

use clap::Parser;
use mcpwarden::cli::{Cli, Command, LogFormat, Switch, dispatch};
use mcpwarden::telemetry::access_log;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let serves = matches!(cli.command, Command::Run { .. } | Command::Demo { .. });
    if serves && cli.access_log == Switch::On {
        access_log::init(match cli.log_format {
            LogFormat::Text => access_log::Format::Text,
            LogFormat::Json => access_log::Format::Json,
        });
    }
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    access_log::flush();
    std::process::exit(code);
}

/// Logs go to stderr; `RUST_LOG` overrides the default level. Pingora's own per-request
/// chatter is kept at warnings.
fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,pingora_core=warn,pingora_proxy=warn,pingora=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// mimalloc rather than the system allocator: Pingora's header handling allocates for every
/// header name and value it touches, and glibc's malloc and free cost several times more
/// instructions per call (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
