//! Engine benchmarks: single and batch encrypt/decrypt beside raw `aes-gcm` seal/open
//! of the same sizes, and the cost of each nonce source. Results in `BENCHMARKS.md`.
//!
//! Run: `cargo bench --bench engine` (add `-- <filter>` for one group).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // benchmark harness

use std::hint::black_box;
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

mod common;
use common::{raw_open, raw_seal};
use encrypted_attr::{Ciphertext, DecryptItem, EncryptItem, KeyName, KeyOptions, LocalEngine, TransitEngine};
use rand::TryRng as _;

const SIZES: [usize; 4] = [16, 64, 1024, 16 * 1024];
const BATCH: usize = 1000;

fn setup() -> (LocalEngine, KeyName) {
    let engine = LocalEngine::ephemeral().expect("engine");
    let key = KeyName::new("bench").expect("name");
    engine.create_key(&key, KeyOptions::default()).expect("key");
    (engine, key)
}

fn single(c: &mut Criterion) {
    let (engine, key) = setup();
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("key");
    let mut group = c.benchmark_group("single");
    for size in SIZES {
        let plaintext = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("raw_aes_gcm_seal_base64", size), &plaintext, |b, p| {
            let mut counter = 0;
            b.iter(|| black_box(raw_seal(&cipher, &mut counter, p)));
        });
        group.bench_with_input(BenchmarkId::new("engine_encrypt_encode", size), &plaintext, |b, p| {
            b.iter(|| {
                let ct = engine.encrypt(&key, EncryptItem::new(&p[..])).expect("encrypt");
                black_box(ct.into_string())
            });
        });
        let raw = raw_seal(&cipher, &mut 0, &plaintext);
        group.bench_with_input(BenchmarkId::new("raw_base64_aes_gcm_open", size), &raw, |b, s| {
            b.iter(|| black_box(raw_open(&cipher, s)));
        });
        let text = engine
            .encrypt(&key, EncryptItem::new(&plaintext[..]))
            .expect("encrypt")
            .to_string();
        group.bench_with_input(BenchmarkId::new("engine_parse_decrypt", size), &text, |b, s| {
            b.iter(|| {
                let ct: Ciphertext = s.parse().expect("parse");
                black_box(engine.decrypt(&key, DecryptItem::new(ct)).expect("decrypt"))
            });
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let (engine, key) = setup();
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("key");
    let mut group = c.benchmark_group("batch_1000");
    group.sample_size(20);
    for size in SIZES {
        let plaintext = vec![0x5au8; size];
        group.throughput(Throughput::Elements(BATCH as u64));
        group.bench_with_input(BenchmarkId::new("raw_aes_gcm_seal_base64", size), &plaintext, |b, p| {
            let mut counter = 0;
            b.iter(|| {
                black_box(
                    (0..BATCH)
                        .map(|_| raw_seal(&cipher, &mut counter, p))
                        .collect::<Vec<_>>(),
                )
            });
        });
        group.bench_with_input(
            BenchmarkId::new("engine_encrypt_batch_encode", size),
            &plaintext,
            |b, p| {
                b.iter(|| {
                    let items = (0..BATCH).map(|_| EncryptItem::new(&p[..])).collect();
                    let out = engine.encrypt_batch(&key, items).expect("batch");
                    black_box(
                        out.into_iter()
                            .map(|r| r.expect("item").into_string())
                            .collect::<Vec<_>>(),
                    )
                });
            },
        );
        let raw: Vec<String> = (0..BATCH)
            .map(|i| raw_seal(&cipher, &mut (i as u64), &plaintext))
            .collect();
        group.bench_with_input(BenchmarkId::new("raw_base64_aes_gcm_open", size), &raw, |b, all| {
            b.iter(|| black_box(all.iter().map(|s| raw_open(&cipher, s)).collect::<Vec<_>>()));
        });
        let texts: Vec<String> = engine
            .encrypt_batch(&key, (0..BATCH).map(|_| EncryptItem::new(&plaintext[..])).collect())
            .expect("batch")
            .into_iter()
            .map(|r| r.expect("item").to_string())
            .collect();
        group.bench_with_input(
            BenchmarkId::new("engine_parse_decrypt_batch", size),
            &texts,
            |b, all| {
                b.iter(|| {
                    let items = all
                        .iter()
                        .map(|s| DecryptItem::new(s.parse().expect("parse")))
                        .collect();
                    black_box(engine.decrypt_batch(&key, items).expect("batch"))
                });
            },
        );
    }
    group.finish();
}

/// The candidates for the random-nonce source (see docs/nonces.md).
fn nonce_sources(c: &mut Criterion) {
    let mut group = c.benchmark_group("nonce_12_bytes");
    group.bench_function("os_getrandom", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            getrandom::fill(&mut n).expect("os random");
            black_box(n)
        });
    });
    group.bench_function("thread_rng_chacha12", |b| {
        b.iter(|| {
            let mut n = [0u8; 12];
            rand::rng().try_fill_bytes(&mut n).expect("rng");
            black_box(n)
        });
    });
    group.bench_function("getpid_fork_check", |b| b.iter(|| black_box(std::process::id())));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single, batch, nonce_sources
}
criterion_main!(benches);
