//! `genq`: the one binary. API + workers (`serve`), workers only (`worker`), migrations, a CLI
//! client for the HTTP API, and the benchmark.

mod bench;
mod cli;
mod client;
mod doctor;
mod serve;

use clap::Parser;
use std::process::ExitCode;

/// mimalloc rather than glibc's allocator: glibc keeps what a burst of large requests took in
/// its per-thread arenas for the life of the process, mimalloc gives it back to the system
/// (and is faster on the small allocations a queue makes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    serve::init_logging(&args.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
