//! The names on Vault's transit wire that both ends use: request parameters, the
//! fields of a batch item and of its result. `RemoteEngine` writes requests and
//! reads answers with them; the companion server reads requests and writes answers
//! with them. Not a stable API.

/// The items of a batch request.
pub const BATCH_INPUT: &str = "batch_input";
/// The per-item results of a batch answer.
pub const BATCH_RESULTS: &str = "batch_results";
/// Base64 of the bytes to encrypt (request), or of the bytes decrypted (answer).
pub const PLAINTEXT: &str = "plaintext";
/// A `vault:v<N>:…` envelope.
pub const CIPHERTEXT: &str = "ciphertext";
/// Base64 of a derived key's context.
pub const CONTEXT: &str = "context";
/// Base64 of the associated data bound into the ciphertext.
pub const ASSOCIATED_DATA: &str = "associated_data";
/// A key version: to encrypt with (request), or used (answer).
pub const KEY_VERSION: &str = "key_version";
/// A caller's label for a batch item, echoed back in its result.
pub const REFERENCE: &str = "reference";
/// Base64 of the bytes to MAC or hash.
pub const INPUT: &str = "input";
/// A `vault:v<N>:…` HMAC.
pub const HMAC: &str = "hmac";
/// A signature (signing keys are not offered; the name is recognised to refuse it).
pub const SIGNATURE: &str = "signature";
/// Whether a verified HMAC matched.
pub const VALID: &str = "valid";
/// One batch item's error message.
pub const ERROR: &str = "error";

/// Every field a batch item may carry, across encrypt, decrypt, rewrap, hmac and
/// verify.
pub const ITEM_FIELDS: [&str; 9] = [
    PLAINTEXT,
    CIPHERTEXT,
    CONTEXT,
    ASSOCIATED_DATA,
    KEY_VERSION,
    REFERENCE,
    INPUT,
    HMAC,
    SIGNATURE,
];
