//! The `login-bridge` binary: wires telemetry and the command line; everything else lives in
//! the library (`cli` runs the subcommands).

use std::process::ExitCode;

use clap::Parser;
use login_bridge::{cli, telemetry};

// A request allocates many small, short-lived objects (headers, claims, JSON); mimalloc handles
// that pattern markedly better than glibc's malloc (see bench/api-vs-healthz.sh).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    telemetry::init();
    cli::run(cli::Cli::parse()).await
}
