//! The async application path: every generated method and every engine operation on
//! the async face of `RemoteEngine`, inside a multi-threaded tokio runtime, against
//! this server and against a real OpenBao; large batches split into requests the
//! server accepts, with results in order and only failed requests retried.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use encrypted_attr::{
    AsyncTransitEngine, BatchLimits, Ciphertext, ClientConfig, DataKeyBits, DataKeyRequest, DecryptItem, EncryptItem,
    Encrypted, ExportKind, HashAlgorithm, HmacItem, KeyConfig, KeyName, KeyOptions, KeyVersion, RemoteEngine,
    RewrapItem, TransitEngine, VerifyHmacItem,
};
use support::{ROOT, start_openbao, start_server};

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "customers", id = "id", record(derive(Debug, Clone)))]
struct Customer {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted(convergent)]
    email: String,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    phone: Option<String>,
}

/// Per-tenant keys: derived from `tenant_id`.
#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "tickets", id = "id", record(derive(Debug, Clone)))]
struct Ticket {
    id: i64,
    tenant_id: String,
    #[encrypted(context = "tenant_id")]
    body: String,
    #[encrypted(convergent, context = "tenant_id")]
    email: String,
}

/// Per-tenant keys through the server: derived keys, contexts and associated data
/// together on the wire.
async fn per_tenant_keys(engine: &RemoteEngine, ours: bool) {
    Ticket::ensure_keys_async(engine).await.unwrap();
    let tickets: Vec<Ticket> = (1..=6)
        .map(|id| Ticket {
            id,
            tenant_id: format!("tenant-{}", id % 2),
            body: format!("body {id}"),
            email: "shared@example.com".into(),
        })
        .collect();
    let records = Ticket::encrypt_all_async(&tickets, engine).await.unwrap();
    assert_eq!(records[0].email, records[2].email);
    assert_ne!(records[0].email, records[1].email);
    assert_eq!(
        TicketRecord::decrypt_all_async(records.clone(), engine).await.unwrap(),
        tickets
    );
    let found = Ticket::email_lookup_async(engine, &"tenant-1".to_owned(), &"shared@example.com".to_owned())
        .await
        .unwrap();
    assert_eq!(found, vec![records[0].email.clone()]);
    let mut moved = records[0].clone();
    moved.tenant_id = "tenant-0".into();
    assert!(moved.decrypt_async(engine).await.is_err());

    // Upgrade on read: server-side rewrap of what is below the latest version. The
    // convergent email carries only a context, which Vault's rewrap takes too; the
    // body carries associated data, which only this server's rewrap takes.
    engine.rotate_key_async(&name("tickets_email")).await.unwrap();
    engine.rotate_key_async(&name("tickets_body")).await.unwrap();
    let loaded = TicketRecord::decrypt_all_upgrading_async(records, engine)
        .await
        .unwrap();
    assert_eq!(loaded.models, tickets);
    // Against OpenBao the bodies stay (its rewrap takes no associated data); the
    // load succeeds all the same.
    assert_eq!(loaded.upgrades.len(), if ours { 12 } else { 6 });
    assert_eq!(loaded.not_upgraded, if ours { 0 } else { 6 });
    for upgrade in &loaded.upgrades {
        assert_eq!(upgrade.ciphertext.version().get(), 2);
        assert_eq!(upgrade.row_id.as_deref(), Some(format!("{}", upgrade.row + 1).as_str()));
    }
}

fn customer(id: i64) -> Customer {
    Customer {
        id,
        name: format!("customer {id}"),
        ssn: format!("{id:03}-45-6789"),
        email: format!("c{id}@example.com"),
        phone: (id % 3 != 0).then(|| format!("+1 (555) {id:04}")),
    }
}

fn name(s: &str) -> KeyName {
    KeyName::new(s).unwrap()
}

/// Every method the derive generates, on the async face.
async fn every_generated_method(engine: &RemoteEngine) {
    Customer::ensure_keys_async(engine).await.unwrap();
    // Twice: an existing key of the right kind is accepted.
    Customer::ensure_keys_async(engine).await.unwrap();

    let models: Vec<Customer> = (1..=30).map(customer).collect();
    let records = Customer::encrypt_all_async(&models, engine).await.unwrap();
    assert!(records.iter().all(|r| r.ssn.as_str().starts_with("vault:v1:")));
    let one = models[0].encrypt_async(engine).await.unwrap();
    assert_eq!(one.email, records[0].email, "convergent: same value, same ciphertext");
    assert_ne!(one.ssn, records[0].ssn, "random: fresh nonce");
    assert_eq!(one.decrypt_async(engine).await.unwrap(), models[0]);
    assert_eq!(
        CustomerRecord::decrypt_all_async(records.clone(), engine)
            .await
            .unwrap(),
        models
    );

    let found = Customer::email_lookup_async(engine, &"c7@example.com".to_owned())
        .await
        .unwrap();
    assert_eq!(found, vec![records[6].email.clone()]);
    let index = Customer::phone_index_async(engine, &"15550007".to_owned())
        .await
        .unwrap();
    assert_eq!(Some(&index[0]), records[6].phone_bidx.as_ref(), "normalised to digits");

    // A partial update, bound to its row.
    let mut updated = records[4].clone();
    updated.ssn = Customer::encrypt_ssn_async(engine, &5, &"999-00-1111".to_owned())
        .await
        .unwrap();
    assert_eq!(updated.clone().decrypt_async(engine).await.unwrap().ssn, "999-00-1111");
    let mut moved = records[5].clone();
    moved.ssn = updated.ssn;
    assert!(moved.decrypt_async(engine).await.is_err(), "bound to row 5, not 6");
    let email = Customer::encrypt_email_async(engine, &5, &"c5@example.com".to_owned())
        .await
        .unwrap();
    assert_eq!(email, records[4].email);
    let phone = Customer::encrypt_phone_async(engine, &5, &"+1 (555) 0005".to_owned())
        .await
        .unwrap();
    assert!(phone.as_str().starts_with("vault:v1:"));

    // After a rotation, lookups match rows under both versions.
    engine.rotate_key_async(&name("customers_email")).await.unwrap();
    engine.rotate_key_async(&name("customers_phone")).await.unwrap();
    let found = Customer::email_lookup_async(engine, &"c7@example.com".to_owned())
        .await
        .unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.contains(&records[6].email));
    let index = Customer::phone_index_async(engine, &"1-555-0007".to_owned())
        .await
        .unwrap();
    assert_eq!(index.len(), 2);
    assert!(index.iter().any(|i| Some(i) == records[6].phone_bidx.as_ref()));
}

/// Every engine operation on the async face. `ours` enables our extensions.
async fn every_engine_operation(engine: &RemoteEngine, ours: bool) {
    let key = name("async_admin");
    let info = engine
        .create_key_async(&key, KeyOptions::default().exportable(true))
        .await
        .unwrap();
    assert_eq!(info.latest_version.get(), 1);
    assert!(engine.list_keys_async().await.unwrap().contains(&key));
    let ct = engine
        .encrypt_async(&key, EncryptItem::new("secret").associated_data("row-1"))
        .await
        .unwrap();
    assert_eq!(engine.rotate_key_async(&key).await.unwrap().latest_version.get(), 2);
    let rewrapped = if ours {
        engine
            .rewrap_async(&key, RewrapItem::new(ct.clone()).associated_data("row-1"))
            .await
            .unwrap()
    } else {
        // Vault's rewrap takes no associated data.
        let plain = engine.encrypt_async(&key, EncryptItem::new("other")).await.unwrap();
        engine.rewrap_async(&key, RewrapItem::new(plain)).await.unwrap()
    };
    assert_eq!(rewrapped.version().get(), 2);
    let opened = engine
        .decrypt_async(&key, DecryptItem::new(ct).associated_data("row-1"))
        .await
        .unwrap();
    assert_eq!(opened.expose_secret(), b"secret");

    let data_key = engine
        .datakey_async(&key, DataKeyRequest::new(DataKeyBits::B256))
        .await
        .unwrap();
    let plain = engine
        .decrypt_async(&key, DecryptItem::new(data_key.ciphertext))
        .await
        .unwrap();
    assert_eq!(Some(plain), data_key.plaintext);

    let tag = engine
        .hmac_async(&key, HashAlgorithm::Sha2_256, HmacItem::new("msg"))
        .await
        .unwrap();
    let checks = engine
        .verify_hmac_batch_async(
            &key,
            HashAlgorithm::Sha2_256,
            vec![VerifyHmacItem::new("msg", tag.clone()), VerifyHmacItem::new("msh", tag)],
        )
        .await
        .unwrap();
    assert!(*checks[0].as_ref().unwrap());
    assert!(!*checks[1].as_ref().unwrap());

    let exported = engine
        .export_key_async(&key, ExportKind::EncryptionKey, None)
        .await
        .unwrap();
    assert_eq!(exported.keys.len(), 2);
    let info = engine
        .configure_key_async(
            &key,
            KeyConfig::default()
                .min_decryption_version(2)
                .min_encryption_version(2)
                .deletion_allowed(true),
        )
        .await
        .unwrap();
    assert_eq!(info.min_decryption_version.get(), 2);
    let info = engine.trim_key_async(&key, KeyVersion::new(2).unwrap()).await.unwrap();
    assert_eq!(info.min_available_version, 2);
    assert_eq!(engine.random_bytes_async(24).await.unwrap().len(), 24);
    assert_eq!(
        engine.hash_async(HashAlgorithm::Sha2_256, b"abc").await.unwrap()[..2],
        [0xba, 0x78]
    );
    engine.delete_key_async(&key).await.unwrap();
    let missing = engine.read_key_async(&key).await;
    assert!(
        matches!(missing, Err(encrypted_attr::Error::KeyNotFound { .. })),
        "{missing:?}"
    );
}

/// 10,000 items with associated data in one call of each kind, on both faces: more
/// than OpenBao accepts in one request (1,000 JSON strings), so the client splits.
async fn large_batches(engine: Arc<RemoteEngine>) {
    const N: usize = 10_000;
    let key = name("large_batches");
    engine.create_key_async(&key, KeyOptions::default()).await.unwrap();
    let items = (0..N)
        .map(|i| EncryptItem::new(format!("value {i}")).associated_data(format!("row {i}")))
        .collect();
    let sealed: Vec<Ciphertext> = engine
        .encrypt_batch_async(&key, items)
        .await
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(sealed.len(), N);
    let decrypt_items = move || -> Vec<DecryptItem> {
        sealed
            .iter()
            .enumerate()
            .map(|(i, ct)| DecryptItem::new(ct.clone()).associated_data(format!("row {i}")))
            .collect()
    };
    let opened = engine.decrypt_batch_async(&key, decrypt_items()).await.unwrap();
    for (i, plain) in opened.into_iter().enumerate() {
        assert_eq!(
            plain.unwrap().expose_secret(),
            format!("value {i}").as_bytes(),
            "item {i}"
        );
    }

    // The blocking face, on a blocking thread: same splitting, one request at a time.
    let blocking = Arc::clone(&engine);
    let blocking_key = key.clone();
    tokio::task::spawn_blocking(move || {
        let opened = blocking.decrypt_batch(&blocking_key, decrypt_items()).unwrap();
        assert_eq!(opened.len(), N);
        for (i, plain) in opened.into_iter().enumerate() {
            assert_eq!(
                plain.unwrap().expose_secret(),
                format!("value {i}").as_bytes(),
                "item {i}"
            );
        }
    })
    .await
    .unwrap();

    // HMAC with two versions in one batch: grouped per version, then split.
    engine.rotate_key_async(&key).await.unwrap();
    let items: Vec<HmacItem> = (0..N)
        .map(|i| {
            let item = HmacItem::new(format!("input {i}"));
            if i % 2 == 0 {
                item.key_version(KeyVersion::FIRST)
            } else {
                item
            }
        })
        .collect();
    let tags = engine
        .hmac_batch_async(&key, HashAlgorithm::Sha2_256, items)
        .await
        .unwrap();
    for (i, tag) in tags.iter().enumerate() {
        assert_eq!(tag.as_ref().unwrap().version().get(), if i % 2 == 0 { 1 } else { 2 });
    }

    // A page of 1,000 rows through the derive (three columns, one blind index).
    Customer::ensure_keys_async(&*engine).await.unwrap();
    let models: Vec<Customer> = (1..=1_000).map(customer).collect();
    let records = Customer::encrypt_all_async(&models, &*engine).await.unwrap();
    assert_eq!(
        CustomerRecord::decrypt_all_async(records, &*engine).await.unwrap(),
        models
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_face_against_this_server() {
    let (address, stop) = tokio::task::spawn_blocking(start_server).await.unwrap();
    let engine = Arc::new(RemoteEngine::new(ClientConfig::new(&address, ROOT)).unwrap());
    every_generated_method(&engine).await;
    every_engine_operation(&engine, true).await;
    per_tenant_keys(&engine, true).await;
    large_batches(Arc::clone(&engine)).await;
    stop.send(()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_face_against_openbao() {
    let Some(bao) = tokio::task::spawn_blocking(start_openbao).await.unwrap() else {
        return;
    };
    let engine = Arc::new(RemoteEngine::new(ClientConfig::new(&bao.address, "root")).unwrap());
    every_generated_method(&engine).await;
    every_engine_operation(&engine, false).await;
    per_tenant_keys(&engine, false).await;
    large_batches(Arc::clone(&engine)).await;

    // Unsplit, the same page is refused by OpenBao: the limits are what makes it work.
    let unsplit = RemoteEngine::new(
        ClientConfig::new(&bao.address, "root")
            .batch_limits(BatchLimits::default().max_items(100_000).max_json_strings(usize::MAX)),
    )
    .unwrap();
    let models: Vec<Customer> = (1..=1_000).map(customer).collect();
    let refused = Customer::encrypt_all_async(&models, &unsplit).await.unwrap_err();
    assert!(refused.to_string().contains("high complexity"), "{refused}");
}

/// Every request body a [`flaky_server`] received: the plaintexts of its items.
type Received = Arc<Mutex<Vec<Vec<String>>>>;

/// A minimal HTTP server standing in for a transit server: answers every encrypt
/// request with "ciphertexts" that carry the plaintext, except that the request
/// holding `fail_item` is answered 503 the first time.
fn flaky_server(fail_item: &'static str) -> (String, Received) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let failed = Arc::new(AtomicUsize::new(0));
    let log = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let (log, failed) = (Arc::clone(&log), Arc::clone(&failed));
            std::thread::spawn(move || serve_connection(stream, &log, &failed, fail_item));
        }
    });
    (address, received)
}

fn serve_connection(stream: std::net::TcpStream, log: &Mutex<Vec<Vec<String>>>, failed: &AtomicUsize, fail_item: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let plaintexts: Vec<String> = request["batch_input"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| String::from_utf8(BASE64.decode(item["plaintext"].as_str().unwrap()).unwrap()).unwrap())
            .collect();
        log.lock().unwrap().push(plaintexts.clone());
        let fail = plaintexts.iter().any(|p| p == fail_item) && failed.fetch_add(1, Ordering::SeqCst) == 0;
        let (status, reply) = if fail {
            (
                "503 Service Unavailable",
                serde_json::json!({ "errors": ["try again"] }),
            )
        } else {
            let results: Vec<_> = plaintexts
                .iter()
                .map(|p| {
                    let mut payload = vec![0u8; 28];
                    payload.extend_from_slice(p.as_bytes());
                    serde_json::json!({ "ciphertext": format!("vault:v1:{}", BASE64.encode(payload)) })
                })
                .collect();
            ("200 OK", serde_json::json!({ "data": { "batch_results": results } }))
        };
        let reply = reply.to_string();
        write!(
            writer,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )
        .unwrap();
    }
}

fn check_split_and_retry(received: &Received, results: Vec<encrypted_attr::Result<Ciphertext>>) {
    // Results in item order, whatever order the requests were answered in.
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(&result.unwrap().payload()[28..], format!("p{i}").as_bytes());
    }
    // 35 items at 10 per request: 4 requests, and the failed one once more.
    let mut requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 5, "{requests:?}");
    requests.sort();
    requests.dedup();
    assert_eq!(requests.len(), 4, "only the failed request was sent twice");
    assert_eq!(requests.iter().map(Vec::len).sum::<usize>(), 35);
}

#[test]
fn split_batches_retry_only_the_request_that_failed() {
    let items = || (0..35).map(|i| EncryptItem::new(format!("p{i}"))).collect::<Vec<_>>();
    let config = |address: &str| ClientConfig::new(address, "t").batch_limits(BatchLimits::default().max_items(10));
    let key = name("k");

    let (address, received) = flaky_server("p12");
    let engine = RemoteEngine::new(config(&address)).unwrap();
    check_split_and_retry(&received, engine.encrypt_batch(&key, items()).unwrap());

    let (address, received) = flaky_server("p33");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = RemoteEngine::new(config(&address)).unwrap();
    let results = runtime.block_on(engine.encrypt_batch_async(&key, items())).unwrap();
    check_split_and_retry(&received, results);
}
