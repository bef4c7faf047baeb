//! The binary's edge: parse, run, print one error line, exit.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use smtpsend::app;
use smtpsend::cli::Args;

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            // Help and version go to stdout and succeed; everything else is
            // a usage error (EX_USAGE), as sendmail reports it.
            return ExitCode::from(if usage { 64 } else { 0 });
        }
    };
    let mut stdin = std::io::stdin().lock();
    match app::run(&args, &mut stdin, Box::new(std::io::stderr())) {
        Ok(report) => {
            for n in report.notices {
                eprintln!("smtpsend: {n}");
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("smtpsend: {}", f.message);
            ExitCode::from(f.exit.code())
        }
    }
}
