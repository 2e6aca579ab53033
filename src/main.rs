use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = m2s::cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("m2s=info,warn"))
        .format_target(false)
        .init();
    match m2s::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
