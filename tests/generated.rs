//! The man page and shell completions are generated from the one clap
//! definition and committed; this test fails when they are stale.
//! Regenerate with `SMTPSEND_REGENERATE=1 cargo test --test generated`.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;
use smtpsend::cli::Args;

fn man_page() -> Vec<u8> {
    let cmd = Args::command();
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    man.render_title(&mut out).unwrap();
    man.render_name_section(&mut out).unwrap();
    man.render_synopsis_section(&mut out).unwrap();
    man.render_description_section(&mut out).unwrap();
    man.render_options_section(&mut out).unwrap();
    out.extend_from_slice(&std::fs::read(root().join("man/sections.roff")).unwrap());
    man.render_version_section(&mut out).unwrap();
    out
}

fn completion(shell: Shell) -> Vec<u8> {
    let mut cmd = Args::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "smtpsend", &mut out);
    out
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check(rel: &str, want: Vec<u8>, stale: &mut Vec<String>) {
    let path = root().join(rel);
    if std::env::var_os("SMTPSEND_REGENERATE").is_some() {
        std::fs::write(&path, &want).unwrap();
        return;
    }
    if std::fs::read(&path).ok().as_deref() != Some(&want[..]) {
        stale.push(rel.to_owned());
    }
}

#[test]
fn man_page_and_completions_are_current() {
    let mut stale = Vec::new();
    check("man/smtpsend.1", man_page(), &mut stale);
    for (shell, file) in [
        (Shell::Bash, "completions/smtpsend.bash"),
        (Shell::Zsh, "completions/_smtpsend"),
        (Shell::Fish, "completions/smtpsend.fish"),
        (Shell::Elvish, "completions/smtpsend.elv"),
        (Shell::PowerShell, "completions/_smtpsend.ps1"),
    ] {
        check(file, completion(shell), &mut stale);
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run SMTPSEND_REGENERATE=1 cargo test --test generated and commit them"
    );
}
