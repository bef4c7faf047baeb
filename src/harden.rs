//! Process hardening done once, first thing in `main`: no core file and no
//! ptrace by other processes of the same user, so a password or token held
//! in memory cannot be read back from a crash dump or a debugger attached
//! by whoever else runs as that user (a web application's code, say).
//!
//! It never fails the program: a kernel that refuses (a seccomp filter, an
//! old kernel) leaves the process as it was, which is what every other
//! mailer does anyway.

use rustix::process::{DumpableBehavior, Resource, Rlimit, set_dumpable_behavior, setrlimit};

/// Makes the process non-dumpable (`prctl(PR_SET_DUMPABLE, 0)`: no core
/// file, no ptrace attach, /proc/PID/mem and environ closed to others) and
/// sets `RLIMIT_CORE` to zero, soft and hard, for us and every program we
/// start (the password command).
///
/// A non-dumpable process's /proc/self is owned by root: code that needs
/// this process's uid asks the kernel (`getuid`), never /proc.
pub fn harden_process() {
    let _ = set_dumpable_behavior(DumpableBehavior::NotDumpable);
    let _ = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::process::{dumpable_behavior, getrlimit};

    #[test]
    fn no_core_and_not_dumpable() {
        // A child process: the test harness's own state stays as it was.
        let exe = std::env::current_exe().unwrap();
        if std::env::var_os("SMTPSEND_HARDEN_CHILD").is_some() {
            harden_process();
            assert_eq!(dumpable_behavior().unwrap(), DumpableBehavior::NotDumpable);
            let core = getrlimit(Resource::Core);
            assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
            // The process's own uid is still right where code must look.
            assert_eq!(rustix::process::getuid().as_raw(), crate::identity::uid());
            return;
        }
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "harden::tests::no_core_and_not_dumpable",
                "--nocapture",
            ])
            .env("SMTPSEND_HARDEN_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }
}
