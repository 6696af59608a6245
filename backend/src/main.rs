//! The `login-bridge` binary: hands the command line to the library; `cli` loads the
//! configuration, starts telemetry in its log format, and runs the subcommands.

use std::process::ExitCode;

use clap::Parser;
use login_bridge::cli;

// A request allocates many small, short-lived objects (headers, claims, JSON); mimalloc handles
// that pattern markedly better than glibc's malloc (see bench/api-vs-healthz.sh). Built with
// `no_thp`: with transparent huge pages its arenas grow the resident set 2 MiB at a time (an
// idle bridge held 27 MB instead of 18 MB; bench/hot-path.sh measures it).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    cli::run(cli::Cli::parse()).await
}
