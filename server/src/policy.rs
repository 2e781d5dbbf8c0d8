//! ACL policies: Vault's HCL (or JSON) policy language, its path matching and
//! capability checks.
//!
//! A policy is a set of `path "<pattern>" { capabilities = [...] }` rules. For a
//! request, exact patterns win; otherwise only the highest-priority matching glob
//! pattern counts (no union across patterns), where a later first wildcard, no
//! trailing `*`, fewer `+` segments, a longer and then lexicographically larger
//! pattern have priority. The same pattern in several of a token's policies merges;
//! `deny` anywhere wins. The `root` policy allows everything. HCL is parsed with the
//! `hcl-rs` crate (see `docs/dependencies.md`).

use std::collections::BTreeMap;

use serde_json::Value;

/// One capability bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Capability {
    Create = 1,
    Read = 2,
    Update = 4,
    Delete = 8,
    List = 16,
    Sudo = 32,
    Deny = 64,
    Patch = 128,
}

/// A set of capabilities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities(u8);

/// Everything but `deny`: what the `root` policy grants.
pub(crate) const ALL_CAPABILITIES: Capabilities = Capabilities(!(Capability::Deny as u8));

impl Capabilities {
    fn add(&mut self, c: Capability) {
        self.0 |= c as u8;
    }

    fn merge(&mut self, other: Self) {
        self.0 |= other.0;
    }

    pub(crate) fn allows(self, c: Capability) -> bool {
        self.0 & Capability::Deny as u8 == 0 && self.0 & c as u8 != 0
    }

    /// Whether no capability at all is granted.
    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub(crate) fn names(self) -> Vec<&'static str> {
        let all = [
            (Capability::Create, "create"),
            (Capability::Read, "read"),
            (Capability::Update, "update"),
            (Capability::Delete, "delete"),
            (Capability::List, "list"),
            (Capability::Sudo, "sudo"),
            (Capability::Deny, "deny"),
            (Capability::Patch, "patch"),
        ];
        all.iter()
            .filter(|(c, _)| self.0 & *c as u8 != 0)
            .map(|(_, n)| *n)
            .collect()
    }
}

/// A parsed policy.
#[derive(Clone, Debug)]
pub(crate) struct Policy {
    rules: BTreeMap<String, Capabilities>,
}

/// Longest policy text accepted.
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Deepest nesting of `(`, `[` and `{` accepted in a policy. Vault's policies need
/// three or four levels; the HCL parser's time doubles with each level of nested
/// expressions with operators (found by `fuzz/`: 150 bytes took 11 s), so deeper
/// text is refused before it reaches the parser.
const MAX_POLICY_NESTING: usize = 8;

/// Refuses policy text too long or too deeply nested to parse in bounded time.
/// Brackets are counted everywhere, strings and comments included: HCL parses
/// `${…}` inside strings and heredocs as expressions too.
fn check_complexity(text: &str) -> Result<(), String> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(format!("failed to parse policy: longer than {MAX_POLICY_BYTES} bytes"));
    }
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_POLICY_NESTING {
                    return Err(format!(
                        "failed to parse policy: nested deeper than {MAX_POLICY_NESTING} levels"
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Parses HCL or JSON policy text.
pub(crate) fn parse(text: &str) -> Result<Policy, String> {
    check_complexity(text)?;
    let value: Value = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|_| "failed to parse policy: invalid JSON".to_owned())?
    } else {
        hcl::from_str(text).map_err(|e| format!("failed to parse policy: {e}"))?
    };
    let mut rules = BTreeMap::new();
    let paths = match value.get("path") {
        Some(Value::Object(map)) => vec![map.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(|v| v.as_object().cloned()).collect(),
        None => Vec::new(),
        Some(_) => return Err("failed to parse policy: `path` must be a block".into()),
    };
    for map in paths {
        for (pattern, body) in map {
            let pattern = pattern.trim_start_matches('/').to_owned();
            if pattern.contains("+*") {
                return Err(format!(
                    "path {pattern:?}: the segment wildcard + cannot be followed by *"
                ));
            }
            if pattern.find('*').is_some_and(|i| i + 1 != pattern.len()) {
                return Err(format!("path {pattern:?}: * is only allowed at the end"));
            }
            let mut caps = Capabilities::default();
            let bodies: Vec<&Value> = match &body {
                Value::Array(list) => list.iter().collect(),
                other => vec![other],
            };
            for body in bodies {
                if let Some(list) = body.get("capabilities").and_then(Value::as_array) {
                    for c in list {
                        caps.add(capability(c.as_str().unwrap_or_default())?);
                    }
                }
                match body.get("policy").and_then(Value::as_str) {
                    None => {}
                    Some("read") => [Capability::Read, Capability::List]
                        .into_iter()
                        .for_each(|c| caps.add(c)),
                    Some("write") => [
                        Capability::Create,
                        Capability::Read,
                        Capability::Update,
                        Capability::Delete,
                        Capability::List,
                    ]
                    .into_iter()
                    .for_each(|c| caps.add(c)),
                    Some("sudo") => [
                        Capability::Create,
                        Capability::Read,
                        Capability::Update,
                        Capability::Delete,
                        Capability::List,
                        Capability::Sudo,
                    ]
                    .into_iter()
                    .for_each(|c| caps.add(c)),
                    Some("deny") => caps.add(Capability::Deny),
                    Some(other) => return Err(format!("invalid policy value {other:?}")),
                }
            }
            rules.entry(pattern).or_insert_with(Capabilities::default).merge(caps);
        }
    }
    Ok(Policy { rules })
}

fn capability(name: &str) -> Result<Capability, String> {
    Ok(match name {
        "create" => Capability::Create,
        "read" => Capability::Read,
        "update" => Capability::Update,
        "delete" => Capability::Delete,
        "list" => Capability::List,
        "sudo" => Capability::Sudo,
        "deny" => Capability::Deny,
        "patch" => Capability::Patch,
        "scan" | "subscribe" | "recover" => Capability::List, // accepted, treated as list
        other => return Err(format!("invalid capability {other:?}")),
    })
}

/// Whether `pattern` matches `path` (`+` one segment, trailing `*` any suffix).
fn matches(pattern: &str, path: &str) -> bool {
    let (pattern, glob) = match pattern.strip_suffix('*') {
        Some(p) => (p, true),
        None => (pattern, false),
    };
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    if glob {
        if segs.len() < pat.len() {
            return false;
        }
        let last = pat.len() - 1;
        pat.iter().enumerate().all(|(i, p)| match (i == last, *p) {
            (_, "+") => true,
            (true, prefix) => segs[i].starts_with(prefix),
            (false, exact) => segs[i] == exact,
        })
    } else {
        pat.len() == segs.len() && pat.iter().zip(&segs).all(|(p, s)| *p == "+" || p == s)
    }
}

/// Sort key: the greatest is the pattern that wins among matching globs.
fn priority(pattern: &str) -> (usize, bool, std::cmp::Reverse<usize>, usize, &str) {
    let first_wildcard = pattern.find(['+', '*']).unwrap_or(pattern.len());
    let plus = pattern.split('/').filter(|s| *s == "+").count();
    (
        first_wildcard,
        !pattern.ends_with('*'),
        std::cmp::Reverse(plus),
        pattern.len(),
        pattern,
    )
}

/// Whether `policies` grant anything but `deny` on `prefix` or on some path
/// below it (how Vault decides that a token may learn a mount's type).
pub(crate) fn grants_under(policies: &[&Policy], prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    policies.iter().flat_map(|p| p.rules.iter()).any(|(pattern, caps)| {
        let granting = caps.0 != 0 && caps.0 & Capability::Deny as u8 == 0;
        let stem = pattern.trim_end_matches('*');
        let related = pattern == prefix
            || pattern.starts_with(&format!("{prefix}/"))
            || (pattern.ends_with('*') && prefix.starts_with(stem))
            || matches(pattern, prefix)
            || pattern.split('/').next() == Some("+");
        granting && related
    })
}

/// The capabilities `policies` grant on `path`.
pub(crate) fn capabilities(policies: &[&Policy], path: &str) -> Capabilities {
    let mut exact = None::<Capabilities>;
    for policy in policies {
        if let Some(c) = policy.rules.get(path) {
            exact.get_or_insert_with(Capabilities::default).merge(*c);
        }
    }
    if let Some(c) = exact {
        return c;
    }
    let best = policies
        .iter()
        .flat_map(|p| p.rules.keys())
        .filter(|pattern| (pattern.contains('+') || pattern.ends_with('*')) && matches(pattern, path))
        .max_by(|a, b| priority(a).cmp(&priority(b)));
    let Some(best) = best else {
        return Capabilities::default();
    };
    let mut merged = Capabilities::default();
    for policy in policies {
        if let Some(c) = policy.rules.get(best.as_str()) {
            merged.merge(*c);
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(text: &str, path: &str) -> Capabilities {
        let policy = parse(text).expect("policy parses");
        capabilities(&[&policy], path)
    }

    #[test]
    fn hcl_and_json_forms() {
        let hcl = r#"
            path "transit/encrypt/orders" { capabilities = ["create", "update"] }
            path "transit/decrypt/*" { capabilities = ["update"] }
            path "transit/keys/+/rotate" { capabilities = ["update"] }
            path "transit/export/*" { capabilities = ["deny"] }
            path "secret/old" { policy = "read" }
        "#;
        let json = r#"{"path": {"transit/encrypt/orders": {"capabilities": ["create", "update"]}}}"#;
        assert!(caps(hcl, "transit/encrypt/orders").allows(Capability::Create));
        assert!(caps(json, "transit/encrypt/orders").allows(Capability::Update));
        assert!(!caps(hcl, "transit/encrypt/other").allows(Capability::Update));
        assert!(caps(hcl, "transit/decrypt/anything").allows(Capability::Update));
        assert!(caps(hcl, "transit/keys/k/rotate").allows(Capability::Update));
        assert!(!caps(hcl, "transit/keys/k/config").allows(Capability::Update));
        assert!(!caps(hcl, "transit/keys/a/b/rotate").allows(Capability::Update));
        assert!(!caps(hcl, "transit/export/encryption-key/k").allows(Capability::Read));
        assert!(caps(hcl, "secret/old").allows(Capability::List));
        assert!(parse("path \"a/+*\" { capabilities = [\"read\"] }").is_err());
        assert!(parse("path \"a/*/b\" { capabilities = [\"read\"] }").is_err());
        assert!(parse("path \"a\" { capabilities = [\"fly\"] }").is_err());
        assert!(parse("not hcl {").is_err());
    }

    #[test]
    fn deeply_nested_policies_are_refused_before_parsing() {
        // The HCL parser's time doubles per level here: 24 levels took 11 s.
        let slow = format!("t = {}-", "a[0-0-".repeat(24));
        let started = std::time::Instant::now();
        let error = parse(&slow).unwrap_err();
        assert!(error.contains("nested deeper"), "{error}");
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        // Inside strings too: HCL evaluates `${…}` there.
        let hidden = format!("t = \"${{{}-}}\"", "a[0-0-".repeat(24));
        assert!(parse(&hidden).unwrap_err().contains("nested deeper"));
        // Real policies, templated paths included, pass.
        let fine = "path \"secret/{{identity.entity.id}}/*\" { capabilities = [\"read\"] }\n\
                    path \"transit/encrypt/users_*\" { allowed_parameters = { \"plaintext\" = [] } }";
        assert!(parse(fine).is_ok());
        assert!(parse(&"x".repeat(MAX_POLICY_BYTES + 1)).is_err());
    }

    #[test]
    fn priority_and_deny() {
        // The more specific glob wins, with no union across patterns.
        let p = r#"
            path "transit/*" { capabilities = ["read"] }
            path "transit/keys/*" { capabilities = ["list"] }
        "#;
        let c = caps(p, "transit/keys/x");
        assert!(c.allows(Capability::List) && !c.allows(Capability::Read));
        // Glob is a string prefix, not a segment match.
        assert!(
            caps(
                r#"path "secret/zip-*" { capabilities = ["read"] }"#,
                "secret/zip-zap/zong"
            )
            .allows(Capability::Read)
        );
        // Deny in any policy on the same pattern wins.
        let a = parse(r#"path "transit/encrypt/k" { capabilities = ["update"] }"#).expect("a");
        let b = parse(r#"path "transit/encrypt/k" { capabilities = ["deny"] }"#).expect("b");
        assert!(!capabilities(&[&a, &b], "transit/encrypt/k").allows(Capability::Update));
        // Same pattern in two policies merges.
        let c2 = parse(r#"path "transit/encrypt/k" { capabilities = ["create"] }"#).expect("c");
        let merged = capabilities(&[&a, &c2], "transit/encrypt/k");
        assert!(merged.allows(Capability::Create) && merged.allows(Capability::Update));
    }
}
