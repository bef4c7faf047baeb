//! `[aliases]`: where mail for bare local names goes.
//!
//! cron, at, mdadm and smartd mail "root" or a user name with no domain.
//! As in /etc/aliases, a name is looked up without regard to case; its
//! value is an address, an alias name, or several of them (a TOML list or a
//! comma-separated string), expanded recursively. `default` catches every
//! other bare name. A name with no alias and no default is handed back
//! marked [`Target::Unqualified`] for the caller to qualify with the
//! profile's domain.
//!
//! Only addresses and names: no `|program`, `/file` or `:include:`; a
//! sendmail replacement that relays has nowhere to run or write them.

use std::collections::{BTreeMap, HashSet};

use super::error::ConfigError;
use super::schema::OneOrMany;

/// The alias that catches every bare name without one of its own.
pub const DEFAULT_ALIAS: &str = "default";

/// Where a recipient goes after alias expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address with a domain, as given or as an alias named it.
    Address(String),
    /// A bare name that no alias (and no `default`) matched: qualify it
    /// with the domain.
    Unqualified(String),
}

impl Target {
    pub fn as_str(&self) -> &str {
        match self {
            Target::Address(a) | Target::Unqualified(a) => a,
        }
    }

    pub fn is_unqualified(&self) -> bool {
        matches!(self, Target::Unqualified(_))
    }
}

/// The alias table, keyed by lower-cased name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    map: BTreeMap<String, Vec<String>>,
}

impl Aliases {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The targets written for a name (any case), unexpanded.
    pub fn get(&self, name: &str) -> Option<&[String]> {
        self.map.get(&name.to_lowercase()).map(Vec::as_slice)
    }

    /// Expands a recipient.
    ///
    /// A recipient with `@` comes back unchanged. A bare name is looked up
    /// (any case) and its targets expanded in turn; a bare name that
    /// matches nothing goes to `default` if there is one, else comes back
    /// as [`Target::Unqualified`]. Names inside `default`'s own expansion
    /// never fall back to `default` again. The result keeps first-seen
    /// order and drops repeats (comparing domains without case).
    ///
    /// Errors only on a loop, naming the chain. A loaded [`Config`]
    /// has been checked for loops already.
    ///
    /// [`Config`]: super::Config
    pub fn resolve(&self, recipient: &str) -> Result<Vec<Target>, ConfigError> {
        let mut walk = Walk {
            aliases: self,
            stack: Vec::new(),
            expanded: HashSet::new(),
            seen: HashSet::new(),
            out: Vec::new(),
        };
        walk.expand(recipient, true)?;
        Ok(walk.out)
    }

    /// Builds the table from checked names and targets.
    pub(crate) fn from_map(map: BTreeMap<String, Vec<String>>) -> Aliases {
        Aliases { map }
    }

    /// Alias names in key order, for the load-time loop check.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }
}

struct Walk<'a> {
    aliases: &'a Aliases,
    /// Aliases being expanded, outermost first: a repeat is a loop.
    stack: Vec<String>,
    /// Aliases already expanded once: their targets are in `out` already.
    /// Without this a diamond of aliases would cost exponential time.
    expanded: HashSet<String>,
    seen: HashSet<String>,
    out: Vec<Target>,
}

impl Walk<'_> {
    fn expand(&mut self, name: &str, may_default: bool) -> Result<(), ConfigError> {
        if name.contains('@') {
            self.push(Target::Address(name.to_owned()));
            return Ok(());
        }
        let key = name.to_lowercase();
        match self.aliases.map.get(&key) {
            Some(targets) => self.expand_alias(key, targets, may_default),
            None => match self.aliases.map.get(DEFAULT_ALIAS) {
                Some(targets) if may_default => {
                    self.expand_alias(DEFAULT_ALIAS.to_owned(), targets, false)
                }
                _ => {
                    self.push(Target::Unqualified(name.to_owned()));
                    Ok(())
                }
            },
        }
    }

    fn expand_alias(
        &mut self,
        key: String,
        targets: &[String],
        may_default: bool,
    ) -> Result<(), ConfigError> {
        if self.stack.contains(&key) {
            let mut chain = self.stack.clone();
            chain.push(key);
            return Err(ConfigError::AliasLoop { chain });
        }
        if !self.expanded.insert(key.clone()) {
            return Ok(());
        }
        let may_default = may_default && key != DEFAULT_ALIAS;
        self.stack.push(key);
        for t in targets {
            self.expand(t, may_default)?;
        }
        self.stack.pop();
        Ok(())
    }

    fn push(&mut self, t: Target) {
        let id = match t.as_str().rsplit_once('@') {
            Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
            None => t.as_str().to_lowercase(),
        };
        if self.seen.insert(id) {
            self.out.push(t);
        }
    }
}

/// Checks an alias name and returns its lookup key.
pub(crate) fn check_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("an empty alias name".into());
    }
    if name.contains('@') {
        return Err(format!(
            "alias names are bare local names; \"{name}\" has a domain and would never match"
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "alias name {name:?} has spaces or control characters"
        ));
    }
    Ok(name.to_lowercase())
}

/// Splits and checks an alias value: a string of comma-separated targets
/// or a list of them.
pub(crate) fn parse_targets(v: OneOrMany) -> Result<Vec<String>, String> {
    let pieces: Vec<String> = match v {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    let mut out = Vec::new();
    for piece in &pieces {
        for t in piece.split(',') {
            let t = t.trim();
            if t.is_empty() {
                return Err(
                    "an empty target: give addresses or alias names, separated by commas".into(),
                );
            }
            if t.starts_with('|') || t.starts_with('/') || t.starts_with(":include:") {
                return Err(format!(
                    "{t:?}: programs, files and :include: are not supported; give addresses or alias names"
                ));
            }
            if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("{t:?} has spaces or control characters"));
            }
            out.push(t.to_owned());
        }
    }
    if out.is_empty() {
        return Err("an empty list: give at least one address or alias name".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aliases(pairs: &[(&str, &str)]) -> Aliases {
        let map = pairs
            .iter()
            .map(|(k, v)| {
                (
                    check_name(k).unwrap(),
                    parse_targets(OneOrMany::One((*v).into())).unwrap(),
                )
            })
            .collect();
        Aliases::from_map(map)
    }

    fn strs(v: &[Target]) -> Vec<&str> {
        v.iter().map(Target::as_str).collect()
    }

    #[test]
    fn addresses_pass_unchanged() {
        let a = aliases(&[("root", "admin@example.com"), ("default", "x@example.com")]);
        assert_eq!(
            a.resolve("root@localhost").unwrap(),
            [Target::Address("root@localhost".into())]
        );
    }

    #[test]
    fn lookup_ignores_case_and_recurses() {
        let a = aliases(&[
            ("root", "admins"),
            ("Admins", "alice@example.com, bob@example.com"),
            ("postmaster", "root"),
        ]);
        assert_eq!(
            strs(&a.resolve("ROOT").unwrap()),
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(
            strs(&a.resolve("postmaster").unwrap()),
            ["alice@example.com", "bob@example.com"]
        );
        assert_eq!(a.get("ADMINS").map(<[String]>::len), Some(2));
    }

    #[test]
    fn lists_and_comma_strings_mix() {
        let map = BTreeMap::from([(
            "ops".to_string(),
            parse_targets(OneOrMany::Many(vec![
                "a@x.org, b@x.org".into(),
                "c@x.org".into(),
            ]))
            .unwrap(),
        )]);
        let a = Aliases::from_map(map);
        assert_eq!(
            strs(&a.resolve("ops").unwrap()),
            ["a@x.org", "b@x.org", "c@x.org"]
        );
    }

    #[test]
    fn repeats_are_dropped_in_order() {
        let a = aliases(&[
            ("all", "a, b, a@x.org"),
            ("a", "a@X.ORG, c@x.org"),
            ("b", "c@x.org, A@x.org"),
        ]);
        // a@X.ORG and a@x.org are one mailbox; A@x.org is another local part.
        assert_eq!(
            strs(&a.resolve("all").unwrap()),
            ["a@X.ORG", "c@x.org", "A@x.org"]
        );
    }

    #[test]
    fn loops_name_the_chain() {
        let a = aliases(&[
            ("root", "admin"),
            ("admin", "ops"),
            ("ops", "root, x@y.org"),
        ]);
        let e = a.resolve("root").unwrap_err();
        assert_eq!(
            e.to_string(),
            "alias loop: root -> admin -> ops -> root (make one of them an address)"
        );
        assert_eq!(e.kind(), crate::exit::Sysexit::Config);
        let selfish = aliases(&[("me", "me")]);
        assert!(matches!(
            selfish.resolve("me"),
            Err(ConfigError::AliasLoop { chain }) if chain == ["me", "me"]
        ));
    }

    #[test]
    fn diamonds_are_not_loops() {
        let a = aliases(&[
            ("top", "l, r"),
            ("l", "bottom"),
            ("r", "bottom"),
            ("bottom", "z@x.org"),
        ]);
        assert_eq!(strs(&a.resolve("top").unwrap()), ["z@x.org"]);
    }

    #[test]
    fn default_catches_other_bare_names() {
        let a = aliases(&[("root", "bob"), ("default", "admin@example.com")]);
        assert_eq!(
            a.resolve("alice").unwrap(),
            [Target::Address("admin@example.com".into())]
        );
        // An alias's bare target with no alias of its own falls to default too.
        assert_eq!(strs(&a.resolve("root").unwrap()), ["admin@example.com"]);
    }

    #[test]
    fn default_does_not_fall_back_to_itself() {
        let a = aliases(&[("default", "postmaster")]);
        assert_eq!(
            a.resolve("alice").unwrap(),
            [Target::Unqualified("postmaster".into())]
        );
    }

    #[test]
    fn unmatched_names_come_back_unqualified() {
        let a = aliases(&[("root", "admin@example.com")]);
        let r = a.resolve("Alice").unwrap();
        assert_eq!(r, [Target::Unqualified("Alice".into())]);
        assert!(r[0].is_unqualified());
        assert!(Aliases::default().resolve("x").unwrap()[0].is_unqualified());
    }

    #[test]
    fn bad_names_and_targets() {
        assert!(
            check_name("root@x")
                .unwrap_err()
                .contains("would never match")
        );
        assert!(check_name("a b").is_err());
        assert!(check_name("").is_err());
        assert_eq!(check_name("Root"), Ok("root".into()));
        for bad in [
            "",
            "a,,b",
            "|/usr/bin/prog",
            "/var/mail/x",
            ":include:/x",
            "a b@x",
        ] {
            assert!(
                parse_targets(OneOrMany::One(bad.into())).is_err(),
                "{bad:?}"
            );
        }
        assert!(parse_targets(OneOrMany::Many(vec![])).is_err());
    }
}
