//! Entry points for the fuzz targets (`fuzz/`): thin wrappers over crate-private parsers; not a stable API.
//!
//! Each wrapper runs one parser on arbitrary input, then reads the result the way a
//! handler would, so that a panic anywhere on that path shows up under the fuzzer.
//! Errors are the expected answer to most inputs and are dropped; the few
//! assertions check properties the parsers document.

use crate::params::{ITEM_FIELDS, Params, Reads};
use crate::policy::{self, Capability};

/// Top-level names read from a fuzzed body, besides every batch item name (a body
/// may carry those at the top level too): the other kinds of value handlers read.
const OTHER_TOP_LEVEL_NAMES: [&str; 5] = ["type", "exportable", "ttl", "auto_rotate_period", "policies"];

/// Parses `body` as a request body, then reads every kind of value from it and from
/// each `batch_input` item, and builds the audit log's view.
///
/// # Panics
/// If a parser or accessor panics, or if a body the parser accepted is refused by
/// the audit log's full parse (the parser promises it accepts nothing more).
pub fn parse_request_body(body: &[u8]) {
    let Ok(params) = Params::from_body(body) else {
        return;
    };
    params.declare(&Reads(&[&ITEM_FIELDS, &OTHER_TOP_LEVEL_NAMES, &["options"]]));
    read_every_kind(&params, &ITEM_FIELDS);
    read_every_kind(&params, &OTHER_TOP_LEVEL_NAMES);
    let _ = params.raw("options");
    if let Ok(Some(items)) = params.batch_items() {
        for item in &items {
            // Only names of `ITEM_FIELDS`: reading any other from an item is a handler
            // bug, which a debug assertion reports.
            read_every_kind(item, &ITEM_FIELDS);
            let _ = item.raw("plaintext");
            let _ = item.audit_fields();
            let _ = item.ignored_warning();
        }
    }
    assert!(
        params.audit_fields().is_ok(),
        "a body accepted by Params::from_body is refused by audit_fields"
    );
    let _ = params.ignored_warning();
}

fn read_every_kind(params: &Params<'_>, names: &[&'static str]) {
    for &name in names {
        let _ = params.has(name);
        let _ = params.text(name);
        let _ = params.string(name);
        let _ = params.bool(name);
        let _ = params.int(name);
        let _ = params.duration(name);
    }
}

/// Parses `text` as an HCL or JSON policy, then checks capabilities on paths taken
/// from the text (each quoted string, and it with its wildcards filled in) and on a
/// few fixed ones.
///
/// # Panics
/// If the parser or the capability check panics, or if checking against the same
/// policy twice gives another answer than checking against it once.
pub fn parse_policy(text: &str) {
    let Ok(parsed) = policy::parse(text) else {
        return;
    };
    let quoted = text.split('"').skip(1).step_by(2).take(4);
    for pattern in quoted {
        check_path(&parsed, pattern);
        check_path(&parsed, &pattern.replace('*', "x/y").replace('+', "seg"));
    }
    for path in ["", "transit/encrypt/k", "sys/policy/default"] {
        check_path(&parsed, path);
    }
}

fn check_path(parsed: &policy::Policy, path: &str) {
    let once = policy::capabilities(&[parsed], path);
    assert_eq!(
        policy::capabilities(&[parsed, parsed], path),
        once,
        "merging a policy with itself changed the capabilities on {path:?}"
    );
    for capability in [
        Capability::Create,
        Capability::Read,
        Capability::Update,
        Capability::Delete,
        Capability::List,
        Capability::Sudo,
        Capability::Deny,
        Capability::Patch,
    ] {
        let _ = once.allows(capability);
    }
}
