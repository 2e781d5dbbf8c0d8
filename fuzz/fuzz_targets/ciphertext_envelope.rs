//! `vault:v<N>:<base64>` envelopes: parsing never panics, and whatever parses has one
//! canonical form that parses back to the same value.

#![no_main]

use encrypted_attr::Ciphertext;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Envelopes are text: columns and JSON fields hold strings, never raw bytes.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(ciphertext) = text.parse::<Ciphertext>() else {
        return;
    };
    assert_eq!(ciphertext.to_string(), ciphertext.as_str());
    let again: Ciphertext = match ciphertext.as_str().parse() {
        Ok(again) => again,
        Err(e) => panic!("the canonical form {:?} does not parse: {e}", ciphertext.as_str()),
    };
    assert_eq!(again, ciphertext, "re-parsed canonical form differs");
    // The canonical form is a fixed point, and every way of building one agrees.
    assert_eq!(again.as_str(), ciphertext.as_str());
    assert_eq!(
        Ciphertext::from_parts(ciphertext.version(), ciphertext.payload()),
        ciphertext
    );
    assert!(matches!(Ciphertext::try_from(text.to_owned()), Ok(owned) if owned == ciphertext));
});
