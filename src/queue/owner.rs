//! Whose mail is whose: the system spool's per-uid queues as root sees
//! them, and how a queue run started by root delivers a user's mail as
//! that user and never as itself.
//!
//! A queued message is only ever sent with an identity its owner could
//! use by running smtpsend themselves. Root's `smtpsend -q` therefore
//! handles its own queues, then, for each uid whose directory in a
//! system spool holds mail ([`uids_with_entries`]), runs a fresh
//! smtpsend that becomes that uid ([`command_as`]): its groups, gid and
//! uid from `/etc/passwd` and `/etc/group`, its home, a clean
//! environment, and so its own configuration and its own profiles. A
//! forged entry naming root's profile is sent, if at all, with whatever
//! that profile means to its owner; root's credentials (readable by root
//! alone) are out of its reach.
//!
//! The change of identity happens in the new process, before it reads
//! any configuration ([`become_requested_owner`]): std's
//! `CommandExt::uid`/`gid` would drop every supplementary group (its
//! `groups` is unstable), and a user's groups may be what lets them read
//! the system configuration (a 0640 root:mail file). The new process
//! sets them with rustix's `setgroups`/`setresgid`/`setresuid` wrappers,
//! which act on the calling thread: it has no other thread yet, and it
//! checks the result before going on. `#![forbid(unsafe_code)]` holds.
//!
//! Root may list ([`user_queues`], for `mailq`) and remove other users'
//! entries: both only read or unlink names in the user's own directory,
//! through a descriptor checked to be that user's.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::error::QueueError;
use super::files;
use super::spool::Queue;

/// The variable through which root's runner asks a new smtpsend to
/// become a uid: `UID:SPOOL` (the system spool it should run). Honoured
/// only when the process is root; a user cannot use it to become anyone.
pub const OWNER_ENV: &str = "SMTPSEND_QUEUE_OWNER";

/// The longest one user's queue run may take when root runs it; after
/// that it is killed (its messages stay queued, locks released).
pub const USER_RUN_TIMEOUT: Duration = Duration::from_secs(3600);

/// The largest `/etc/passwd` or `/etc/group` read.
const MAX_ACCOUNT_FILE: u64 = 16 << 20;

/// How often a waiting runner looks at its child.
const POLL: Duration = Duration::from_millis(20);

/// The system spool this process was asked to run for its new owner.
static REQUESTED_SPOOL: OnceLock<PathBuf> = OnceLock::new();

/// A uid's queue in a system spool.
#[derive(Debug)]
pub struct UserQueue {
    /// The owner.
    pub uid: u32,
    /// The queue, opened through descriptors checked to be the owner's.
    pub queue: Queue,
}

/// Whether `dir` is a system spool: a root-owned directory with the
/// sticky bit (see [`Queue`]).
pub fn is_system_spool(dir: &Path) -> bool {
    files::open_dir_at(None, dir, None)
        .and_then(|fd| Ok(rustix::fs::fstat(&fd)?))
        .is_ok_and(|st| st.st_uid == 0 && st.st_mode & 0o1000 != 0)
}

/// Every uid's queue in the system spool `spool` (root can list it;
/// others get an error). Names that are not a uid are ignored; a
/// directory not owned by its uid, or open to others, is reported in the
/// second list and left alone.
pub fn user_queues(spool: &Path) -> Result<(Vec<UserQueue>, Vec<QueueError>), QueueError> {
    let fd = files::open_dir_at(None, spool, None).map_err(|e| QueueError::read(spool, e))?;
    let names = files::names_at(fd.as_fd()).map_err(|e| QueueError::read(spool, e))?;
    let mut uids: Vec<u32> = names
        .iter()
        .filter_map(|n| n.parse().ok().filter(|u: &u32| u.to_string() == *n))
        .collect();
    uids.sort_unstable();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    for uid in uids {
        match Queue::open_in(fd.as_fd(), spool, uid, false) {
            Ok(queue) => ok.push(UserQueue { uid, queue }),
            Err(e) => bad.push(e),
        }
    }
    Ok((ok, bad))
}

/// The uids other than `except` whose queue in `spool` holds anything:
/// one directory read of the spool and one block of each `msg/`.
pub fn uids_with_entries(spool: &Path, except: u32) -> Result<Vec<u32>, QueueError> {
    let (queues, _) = user_queues(spool)?;
    Ok(queues
        .into_iter()
        .filter(|u| u.uid != except && u.queue.is_empty().is_ok_and(|e| !e))
        .map(|u| u.uid)
        .collect())
}

/// A user account, from `/etc/passwd` and `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Every group: the primary one first, then those listing the user.
    pub groups: Vec<u32>,
    /// Home directory.
    pub home: PathBuf,
}

fn read_small(path: &str) -> io::Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)?
        .take(MAX_ACCOUNT_FILE)
        .read_to_string(&mut s)?;
    Ok(s)
}

/// Looks up `uid` in `/etc/passwd` and its groups in `/etc/group`.
pub fn account(uid: u32) -> io::Result<Account> {
    account_in(&read_small("/etc/passwd")?, &read_small("/etc/group")?, uid)
}

fn account_in(passwd: &str, group: &str, uid: u32) -> io::Result<Account> {
    let found = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || f[2].parse::<u32>().ok()? != uid {
            return None;
        }
        Some((
            f[0].to_owned(),
            f[3].parse::<u32>().ok()?,
            PathBuf::from(f[5]),
        ))
    });
    let Some((name, gid, home)) = found else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("uid {uid} is not in /etc/passwd"),
        ));
    };
    let mut groups = vec![gid];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(g) = f[2].parse::<u32>() else { continue };
        if f[3].split(',').any(|m| m == name) && !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(Account {
        name,
        uid,
        gid,
        groups,
        home,
    })
}

/// The command that runs this smtpsend with `args` as `account`, for the
/// system spool `spool`: a clean environment (`HOME`, `USER`, `LOGNAME`,
/// a fixed `PATH`, and [`OWNER_ENV`]); the new process becomes the
/// account in [`become_requested_owner`] before it reads anything.
pub fn command_as(account: &Account, spool: &Path, args: &[&str]) -> io::Result<Command> {
    let exe = std::env::current_exe()?;
    let mut c = Command::new(exe);
    let mut owner = OsString::from(format!("{}:", account.uid));
    owner.push(spool.as_os_str());
    c.args(args)
        .env_clear()
        .env("HOME", &account.home)
        .env("USER", &account.name)
        .env("LOGNAME", &account.name)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(OWNER_ENV, owner)
        .stdin(std::process::Stdio::null())
        .current_dir("/");
    Ok(c)
}

/// Runs `command` (from [`command_as`]) and waits at most `timeout`,
/// killing it after that.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> io::Result<ExitStatus> {
    let mut child = command.spawn()?;
    wait_with_timeout(&mut child, timeout)
}

/// Waits for `child` at most `timeout`, killing it after that.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> io::Result<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(POLL);
    }
}

/// In a process started by [`command_as`]: when root and [`OWNER_ENV`]
/// names a uid, becomes that account (groups, then gid, then uid; real,
/// effective and saved) and checks it took. Returns the uid, or `None`
/// when there was nothing to do. Call it first, before any thread is
/// started and before any configuration is read.
pub fn become_requested_owner() -> Result<Option<u32>, String> {
    become_requested_owner_with(&[])
}

/// [`become_requested_owner`] with `extra_groups` besides the account's
/// (root's mailbox writer adds the mail spool's group, as a setgid-mail
/// delivery agent has it).
pub fn become_requested_owner_with(extra_groups: &[u32]) -> Result<Option<u32>, String> {
    let Some(v) = std::env::var_os(OWNER_ENV) else {
        return Ok(None);
    };
    if files::euid() != 0 {
        // Already someone: the variable grants nothing.
        return Ok(None);
    }
    let v = v.to_string_lossy().into_owned();
    let (uid, spool) = v
        .split_once(':')
        .and_then(|(u, s)| Some((u.parse::<u32>().ok()?, s)))
        .ok_or_else(|| format!("{OWNER_ENV}={v:?} is not UID:SPOOL"))?;
    if uid == 0 {
        return Err(format!("{OWNER_ENV} may not name root"));
    }
    let a = account(uid).map_err(|e| format!("cannot run the queue of uid {uid}: {e}"))?;
    use rustix::process::{Gid, Uid};
    let gids: Vec<Gid> = a
        .groups
        .iter()
        .chain(extra_groups.iter().filter(|g| !a.groups.contains(g)))
        .map(|g| Gid::from_raw(*g))
        .collect();
    let fail = |what: &str, e: rustix::io::Errno| {
        format!("cannot become uid {uid} to run its queue: {what}: {e}")
    };
    rustix::thread::set_thread_groups(&gids).map_err(|e| fail("setgroups", e))?;
    let gid = Gid::from_raw(a.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
    let u = Uid::from_raw(uid);
    rustix::thread::set_thread_res_uid(u, u, u).map_err(|e| fail("setresuid", e))?;
    if rustix::process::getuid().as_raw() != uid
        || rustix::process::geteuid().as_raw() != uid
        || rustix::process::getegid().as_raw() != a.gid
    {
        return Err(format!("cannot become uid {uid}: the change did not take"));
    }
    // Empty for a mailbox writer (crate::app::local), which runs no queue.
    if !spool.is_empty() {
        let _ = REQUESTED_SPOOL.set(PathBuf::from(spool));
    }
    Ok(Some(uid))
}

/// The system spool this process became an owner to run, if it did.
pub fn requested_spool() -> Option<&'static Path> {
    REQUESTED_SPOOL.get().map(PathBuf::as_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        alice:x:1001:1001:Alice:/home/alice:/bin/sh\n\
        broken line\n\
        bob:x:1002:100::/home/bob:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nmail:x:8:alice,bob\nalice:x:1001:\nwheel:x:10:alicia,alice\n";

    #[test]
    fn accounts_with_their_groups() {
        let a = account_in(PASSWD, GROUP, 1001).unwrap();
        assert_eq!(a.name, "alice");
        assert_eq!((a.uid, a.gid), (1001, 1001));
        assert_eq!(a.groups, [1001, 8, 10]);
        assert_eq!(a.home, Path::new("/home/alice"));
        let b = account_in(PASSWD, GROUP, 1002).unwrap();
        assert_eq!(b.groups, [100, 8]);
        assert!(account_in(PASSWD, GROUP, 7).is_err());
    }

    #[test]
    fn the_command_has_a_clean_environment() {
        let a = account_in(PASSWD, GROUP, 1001).unwrap();
        let c = command_as(&a, Path::new("/var/spool/smtpsend"), &["-q"]).unwrap();
        let envs: Vec<(String, String)> = c
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect();
        assert!(envs.contains(&("HOME".into(), "/home/alice".into())));
        assert!(envs.contains(&(OWNER_ENV.into(), "1001:/var/spool/smtpsend".into())));
        assert!(!envs.iter().any(|(k, _)| k.starts_with("SMTPSEND_PASSWORD")));
        assert_eq!(c.get_args().collect::<Vec<_>>(), ["-q"]);
    }

    #[test]
    fn the_variable_grants_nothing_to_a_user_and_never_names_root() {
        // Without the variable: nothing to do.
        if std::env::var_os(OWNER_ENV).is_none() {
            assert_eq!(become_requested_owner(), Ok(None));
        }
    }
}
