//! The baseline both benchmark binaries measure against: raw `aes-gcm` seal/open
//! plus base64, with no randomness and no envelope.

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::AeadInOut;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The baseline: what a hand-written AES-256-GCM field encryption costs at least.
/// Seal with a counter nonce (no randomness), then base64 the nonce ‖ ct ‖ tag.
pub(crate) fn raw_seal(cipher: &Aes256Gcm, counter: &mut u64, plaintext: &[u8]) -> String {
    *counter += 1;
    let mut nonce = [0u8; 12];
    nonce[..8].copy_from_slice(&counter.to_le_bytes());
    let mut out = Vec::with_capacity(12 + plaintext.len() + 16);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached((&nonce).into(), b"", (&mut out[12..]).into())
        .expect("seal");
    out.extend_from_slice(&tag);
    BASE64.encode(&out)
}

pub(crate) fn raw_open(cipher: &Aes256Gcm, encoded: &str) -> Vec<u8> {
    let payload = BASE64.decode(encoded).expect("base64");
    let (nonce, rest) = payload.split_at(12);
    let (body, tag) = rest.split_at(rest.len() - 16);
    let mut plain = body.to_vec();
    cipher
        .decrypt_inout_detached(
            nonce.try_into().expect("nonce"),
            b"",
            (&mut plain[..]).into(),
            tag.try_into().expect("tag"),
        )
        .expect("open");
    plain
}
