//! The binary's edge: parse, run, print one error line, exit.
#![forbid(unsafe_code)]

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use smtpsend::app;
use smtpsend::cli::{self, Args, Personality};

fn main() -> ExitCode {
    smtpsend::harden::harden_process();
    let argv: Vec<_> = std::env::args_os().collect();
    let personality = argv
        .first()
        .map_or(Personality::Sendmail, |a| Personality::from_argv0(a));
    let argv0 = argv.first().cloned().unwrap_or_default();
    let mut args = match Args::try_parse_from(cli::normalize(argv)) {
        Ok(a) => a,
        Err(e) => {
            let usage = e.use_stderr();
            let _ = e.print();
            // Help and version go to stdout and succeed; everything else is
            // a usage error (EX_USAGE), as sendmail reports it.
            return ExitCode::from(if usage { 64 } else { 0 });
        }
    };
    // The sendmail name (or restrict_args) is not a code-execution surface.
    if let Err(refusal) = cli::restrict::apply(&argv0, &mut args) {
        eprintln!("smtpsend: {refusal}");
        return ExitCode::from(refusal.exit().code());
    }
    let mut stdout = std::io::stdout();
    match app::run(
        personality,
        &args,
        Box::new(std::io::stdin()),
        &mut stdout,
        Box::new(std::io::stderr()),
    ) {
        Ok(report) => {
            if !report.output.is_empty() {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(report.output.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return ExitCode::from(74);
                }
            }
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
