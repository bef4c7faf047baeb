//! The binary's edge: parse, resolve, run, print one error line, exit. The
//! exit status always comes from the one table in `smtpsend::exit`; a
//! panic anywhere below becomes one line and the status of a queued
//! message (`smtpsend::app::panic`), never exit 101.
#![forbid(unsafe_code)]

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::ExitCode;

use clap::Parser;
use smtpsend::app::{self, Failure, Invocation, Report};
use smtpsend::cli::{self, Args};
use smtpsend::exit::Sysexit;

fn main() -> ExitCode {
    smtpsend::harden::harden_process();
    app::panic::install_hook();
    let argv: Vec<_> = std::env::args_os().collect();
    let argv0 = argv.first().cloned().unwrap_or_default();
    // Root's mailbox writer, running as the recipient (app::local).
    if argv
        .get(1)
        .is_some_and(|a| a == app::local::DELIVER_LOCAL_FLAG)
    {
        return match app::local::deliver_local_main(&argv[2..]) {
            Ok(path) => {
                println!("{}", path.display());
                exit(Sysexit::Ok)
            }
            Err(f) => fail(&f),
        };
    }
    let args = match Args::try_parse_from(cli::normalize(argv)) {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            return exit(Sysexit::from(&e));
        }
    };
    let ran = catch_unwind(AssertUnwindSafe(|| {
        let inv = Invocation::resolve(&argv0, args)?;
        app::run(
            &inv,
            Box::new(std::io::stdin()),
            &mut std::io::stdout(),
            Box::new(std::io::stderr()),
        )
    }));
    match ran {
        Ok(Ok(report)) => print_report(report),
        Ok(Err(f)) => fail(&f),
        Err(_) => {
            let (code, line) = app::panic::verdict();
            eprintln!("smtpsend: {line}");
            exit(code)
        }
    }
}

fn print_report(report: Report) -> ExitCode {
    if !report.output.is_empty() {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out
            .write_all(report.output.as_bytes())
            .and_then(|_| out.flush())
        {
            return fail(&Failure::new(
                Sysexit::IoErr,
                format!("cannot write to standard output: {e}"),
            ));
        }
    }
    for n in report.notices {
        eprintln!("smtpsend: {n}");
    }
    exit(Sysexit::Ok)
}

fn fail(f: &Failure) -> ExitCode {
    eprintln!("smtpsend: {}", f.message);
    exit(f.exit)
}

fn exit(code: Sysexit) -> ExitCode {
    ExitCode::from(code.code())
}
