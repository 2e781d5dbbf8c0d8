//! The server's request-body parser (`Params::from_body`) and its accessors: never a
//! panic, whatever the body.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    encrypted_attr_server::fuzzing::parse_request_body(data);
});
