//! The configuration: TOML profiles, where the file is looked for, which
//! profile a message uses, aliases for bare local names, and the
//! permission rule for files that hold passwords.
//!
//! Like the engine it never prints and never exits: every failure is a
//! [`ConfigError`] whose text names the file, the line and the key, and
//! says what to do; [`ConfigError::kind`] gives its sysexits code.

mod error;
mod locate;

pub use error::{ConfigError, Exposure, Origin};
pub use locate::{CONFIG_ENV, LookupEnv, SYSTEM_CONFIG, USER_CONFIG, locate, locate_in};
