//! ACL policies in HCL or JSON (`policy::parse`) and the capability check on the
//! result: never a panic, whatever the text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Policies arrive as JSON strings (`sys/policy`) or UTF-8 files: always text.
    if let Ok(text) = std::str::from_utf8(data) {
        encrypted_attr_server::fuzzing::parse_policy(text);
    }
});
