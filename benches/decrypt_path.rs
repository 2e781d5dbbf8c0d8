//! The per-value decrypt path of a load, single thread: from the ciphertext text a
//! database driver hands back to the model's `String` field — envelope parse, row
//! binding, AEAD open, field decode — against the least a hand-written decrypt does
//! (base64 decode, AES-256-GCM open, UTF-8 check) on the same values, interleaved in
//! rounds; medians. Results in `BENCHMARKS.md`.
//!
//! Run: `cargo bench --bench decrypt_path --features aws-lc` (the goal is stated
//! for AWS-LC; without the feature both sides use the RustCrypto backend).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // benchmark harness

use std::hint::black_box;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use encrypted_attr::{Ciphertext, Encrypted, EngineOptions, LocalEngine};

const VALUES: usize = 10_000;
/// Rounds to run (`DECRYPT_PATH_ROUNDS` overrides it): on a shared machine more
/// rounds make the median and the best steadier.
const ROUNDS: usize = 21;
const VALUE_LEN: usize = 64;

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "people", id = "id")]
#[encrypted(record(name = "PersonRecord"))]
struct Person {
    id: i64,
    #[encrypted]
    ssn: String,
}

/// Median and best of the rounds.
fn median(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

/// The baseline's AEAD: the same backend the engine uses.
struct RawOpen {
    #[cfg(feature = "aws-lc")]
    key: aws_lc_rs::aead::LessSafeKey,
    #[cfg(not(feature = "aws-lc"))]
    key: aes_gcm::Aes256Gcm,
}

impl RawOpen {
    fn new() -> Self {
        #[cfg(feature = "aws-lc")]
        let key = aws_lc_rs::aead::LessSafeKey::new(
            aws_lc_rs::aead::UnboundKey::new(&aws_lc_rs::aead::AES_256_GCM, &[7u8; 32]).unwrap(),
        );
        #[cfg(not(feature = "aws-lc"))]
        let key = <aes_gcm::Aes256Gcm as aes_gcm::aead::KeyInit>::new_from_slice(&[7u8; 32]).unwrap();
        Self { key }
    }

    fn seal(&self, n: u64, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&n.to_le_bytes());
        let mut body = plaintext.to_vec();
        #[cfg(feature = "aws-lc")]
        let tag = self
            .key
            .seal_in_place_separate_tag(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::empty(),
                &mut body,
            )
            .unwrap();
        #[cfg(not(feature = "aws-lc"))]
        let tag =
            aes_gcm::aead::AeadInOut::encrypt_inout_detached(&self.key, (&nonce).into(), b"", (&mut body[..]).into())
                .unwrap();
        let mut payload = nonce.to_vec();
        payload.extend_from_slice(&body);
        payload.extend_from_slice(tag.as_ref());
        BASE64.encode(payload)
    }

    /// base64 decode, open in place, UTF-8 check: a `String`.
    fn open(&self, encoded: &str) -> String {
        let mut payload = BASE64.decode(encoded).unwrap();
        let nonce: [u8; 12] = payload[..12].try_into().unwrap();
        #[cfg(feature = "aws-lc")]
        let len = self
            .key
            .open_within(
                aws_lc_rs::aead::Nonce::assume_unique_for_key(nonce),
                aws_lc_rs::aead::Aad::empty(),
                &mut payload,
                12..,
            )
            .unwrap()
            .len();
        #[cfg(not(feature = "aws-lc"))]
        let len = {
            let body_len = payload.len() - 28;
            let tag: [u8; 16] = payload[12 + body_len..].try_into().unwrap();
            aes_gcm::aead::AeadInOut::decrypt_inout_detached(
                &self.key,
                (&nonce).into(),
                b"",
                (&mut payload[12..12 + body_len]).into(),
                (&tag).into(),
            )
            .unwrap();
            payload.copy_within(12..12 + body_len, 0);
            body_len
        };
        payload.truncate(len);
        String::from_utf8(payload).unwrap()
    }
}

fn main() {
    let engine = LocalEngine::ephemeral_with(EngineOptions::default().parallel_batch_threshold(None)).unwrap();
    Person::ensure_keys(&engine).unwrap();
    let people: Vec<Person> = (0..VALUES as i64)
        .map(|id| Person {
            id,
            ssn: format!("{id:0width$}", width = VALUE_LEN),
        })
        .collect();
    // What the database hands back: the id and the ciphertext's text.
    let stored: Vec<(i64, String)> = Person::encrypt_all(&people, &engine)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.ssn.into_string()))
        .collect();
    let raw = RawOpen::new();
    let raw_stored: Vec<String> = people.iter().map(|p| raw.seal(p.id as u64, p.ssn.as_bytes())).collect();

    let (mut raw_ns, mut engine_ns, mut parse_ns, mut open_ns) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let rounds = std::env::var("DECRYPT_PATH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(ROUNDS);
    for _ in 0..rounds {
        let rows = raw_stored.clone();
        let start = Instant::now();
        let opened: Vec<String> = rows.iter().map(|text| raw.open(black_box(text))).collect();
        raw_ns.push(start.elapsed().as_nanos() as f64 / VALUES as f64);
        assert_eq!(opened[7], people[7].ssn);
        drop(rows);

        // The driver's owned strings, as diesel's and sqlx's decoders receive them.
        let rows = stored.clone();
        let start = Instant::now();
        let records: Vec<PersonRecord> = rows
            .into_iter()
            .map(|(id, text)| PersonRecord {
                id,
                ssn: Ciphertext::try_from(black_box(text)).unwrap(),
            })
            .collect();
        let parsed = start.elapsed();
        let models = PersonRecord::decrypt_all(records, &engine).unwrap();
        let total = start.elapsed();
        engine_ns.push(total.as_nanos() as f64 / VALUES as f64);
        parse_ns.push(parsed.as_nanos() as f64 / VALUES as f64);
        open_ns.push((total - parsed).as_nanos() as f64 / VALUES as f64);
        assert_eq!(models[7], people[7]);
    }
    let (raw_ns, engine_ns, parse_ns, open_ns) = (median(raw_ns), median(engine_ns), median(parse_ns), median(open_ns));
    let backend = if cfg!(feature = "aws-lc") { "aws-lc" } else { "aes-gcm" };
    println!("| {VALUE_LEN}-byte values, single thread, {backend}, {rounds} rounds | ns per value, median | best |");
    println!("|---|---|---|");
    let row = |what: &str, (median, best): (f64, f64)| println!("| {what} | {median:.0} | {best:.0} |");
    row("raw: base64 decode + AES-256-GCM open + UTF-8 check", raw_ns);
    row("engine: envelope parse + row binding + open + field decode", engine_ns);
    row(
        "— of which envelope parse (the driver's `String` into a `Ciphertext`)",
        parse_ns,
    );
    row(
        "— of which `decrypt_all` (bindings, open, decode into the model)",
        open_ns,
    );
    println!(
        "| ratio engine / raw | {:.2}× | {:.2}× |",
        engine_ns.0 / raw_ns.0,
        engine_ns.1 / raw_ns.1
    );
}
