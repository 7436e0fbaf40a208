//! The `ferry` binary: parse arguments, set up logging, run, map errors to exit codes.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return ExitCode::from(cli::exit::FAILED);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(()) => ExitCode::from(cli::exit::OK),
        Err(e) => {
            eprintln!("ferry: error: {e}");
            if let ferry::Error::Many(all) = &e {
                for (i, err) in all.iter().enumerate() {
                    eprintln!("  {}: {err}", i + 1);
                }
            }
            ExitCode::from(cli::exit_code(&e))
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("ferry={default}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour_logs())
        .with_writer(|| cli::progress::LogWriter)
        .with_target(false)
        .init();
}

/// Colour codes only for a person at a terminal: never into a pipe or file, never with
/// `NO_COLOR` set (<https://no-color.org>).
fn colour_logs() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
