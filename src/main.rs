use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match m2s::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1, not clap's 2: `plan --detailed-exitcode` uses 2 for "changes".
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // The long-running receiver logs logfmt lines; the one-shot commands plain ones.
    let receiver = matches!(
        &cli.command,
        m2s::cli::Command::Webhook(w) if w.command.is_none()
    );
    m2s::logging::init(receiver);
    match m2s::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
