//! Interleaved ratio harness: the engine against raw `aes-gcm` + base64 on the same
//! inputs, alternating in short rounds so machine noise hits both sides alike.
//! Prints medians per operation and their ratio. Results in `BENCHMARKS.md`.
//!
//! Run: `cargo bench --bench ratio`

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // benchmark harness

use std::hint::black_box;
use std::time::Instant;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use encrypted_attr::{Ciphertext, DecryptItem, EncryptItem, KeyName, KeyOptions, LocalEngine, TransitEngine};

mod common;
use common::{raw_open, raw_seal};

const ROUNDS: usize = 41;

/// Nanoseconds per call of `f`, timed over `iters` calls.
fn time_per_op(iters: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let engine = LocalEngine::ephemeral().expect("engine");
    let key = KeyName::new("bench").expect("name");
    engine.create_key(&key, KeyOptions::default()).expect("key");
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("key");

    println!("| operation | size | raw aes-gcm + base64 | engine | ratio |");
    println!("|---|---|---|---|---|");
    for size in [16usize, 64, 1024, 16 * 1024] {
        let plaintext = vec![0x5au8; size];
        let iters = (200_000 / (size / 16 + 8)).max(200);
        let text = engine
            .encrypt(&key, EncryptItem::new(&plaintext[..]))
            .expect("enc")
            .into_string();
        let raw_text = raw_seal(&cipher, &mut 0, &plaintext);
        let (mut raw_enc, mut eng_enc, mut raw_dec, mut eng_dec) = (vec![], vec![], vec![], vec![]);
        let mut counter = 0;
        for _ in 0..ROUNDS {
            raw_enc.push(time_per_op(iters, || {
                black_box(raw_seal(&cipher, &mut counter, black_box(&plaintext)));
            }));
            eng_enc.push(time_per_op(iters, || {
                let ct = engine
                    .encrypt(&key, EncryptItem::new(black_box(&plaintext[..])))
                    .expect("enc");
                black_box(ct.into_string());
            }));
            raw_dec.push(time_per_op(iters, || {
                black_box(raw_open(&cipher, black_box(&raw_text)));
            }));
            eng_dec.push(time_per_op(iters, || {
                let ct: Ciphertext = black_box(&text).parse().expect("parse");
                black_box(engine.decrypt(&key, DecryptItem::new(ct)).expect("dec"));
            }));
        }
        for (op, raw, eng) in [("encrypt", raw_enc, eng_enc), ("decrypt", raw_dec, eng_dec)] {
            let (r, e) = (median(raw), median(eng));
            println!("| {op} | {size} B | {r:.0} ns | {e:.0} ns | {:.2}× |", e / r);
        }
    }
}
