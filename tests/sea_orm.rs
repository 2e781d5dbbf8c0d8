//! `#[derive(Encrypted)]` with `record = entity::Model` through sea-orm: round trip
//! with NULLs, raw columns hold ciphertext, lookups, a row swap detected — on SQLite
//! always, and on PostgreSQL and MariaDB when their URLs are set (required in CI).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // test code
#![allow(missing_docs, unreachable_pub)] // sea-orm entities must be `pub`

use encrypted_attr::{Encrypted, EncryptedActiveModelTrait, EncryptedSelectTrait, Error, LocalEngine, QueryError};
use sea_orm::{ColumnTrait, ConnectionTrait, Database, DatabaseConnection, EntityTrait, QueryFilter, Statement};

mod person {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sea_people")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub name: String,
        pub ssn: encrypted_attr::Ciphertext,
        pub email: encrypted_attr::Ciphertext,
        pub phone: Option<encrypted_attr::Ciphertext>,
        pub phone_bidx: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "sea_people", id = "id", record = person::Model)]
pub struct Person {
    id: i64,
    name: String,
    #[encrypted]
    ssn: String,
    #[encrypted(convergent)]
    email: String,
    #[encrypted(blind_index = "phone_bidx", normalize = "digits")]
    phone: Option<String>,
}

fn sample(id: i64) -> Person {
    Person {
        id,
        name: format!("n{id}"),
        ssn: format!("{id:03}-00-1111"),
        email: format!("p{}@example.org", id % 5),
        phone: (id % 2 == 0).then(|| format!("+44 20 7946 {id:04}")),
    }
}

async fn scenario(db: &DatabaseConnection) {
    let engine = LocalEngine::ephemeral().unwrap();
    Person::ensure_keys(&engine).unwrap();
    db.execute_unprepared("DROP TABLE IF EXISTS sea_people").await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE sea_people (id BIGINT PRIMARY KEY, name TEXT NOT NULL, ssn TEXT NOT NULL, \
         email TEXT NOT NULL, phone TEXT, phone_bidx TEXT)",
    )
    .await
    .unwrap();

    let people: Vec<Person> = (1..=50).map(sample).collect();
    let records = Person::encrypt_all_async(&people, &engine).await.unwrap();
    person::Entity::insert_many(records.into_iter().map(person::ActiveModel::from))
        .exec(db)
        .await
        .unwrap();

    let loaded = person::Entity::find().all(db).await.unwrap();
    let mut back = person::Model::decrypt_all_async(loaded, &engine).await.unwrap();
    back.sort_by_key(|p| p.id);
    assert_eq!(back, people);

    // Raw SQL: ciphertext only, NULL stays NULL.
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_string(
            backend,
            "SELECT ssn, phone FROM sea_people WHERE id = 1",
        ))
        .await
        .unwrap()
        .unwrap();
    let ssn: String = row.try_get("", "ssn").unwrap();
    let phone: Option<String> = row.try_get("", "phone").unwrap();
    assert!(ssn.starts_with("vault:v1:") && !ssn.contains("00-1111"), "{ssn}");
    assert_eq!(phone, None);

    // Lookups.
    let wanted = Person::email_lookup(&engine, &"p3@example.org".to_owned()).unwrap();
    let hits = person::Entity::find()
        .filter(person::Column::Email.is_in(wanted))
        .all(db)
        .await
        .unwrap();
    assert_eq!(hits.len(), 10);
    let index = Person::phone_index(&engine, &"442079460004".to_owned()).unwrap();
    let by_phone = person::Entity::find()
        .filter(person::Column::PhoneBidx.is_in(index))
        .all(db)
        .await
        .unwrap();
    assert_eq!(by_phone.len(), 1);
    assert_eq!(by_phone[0].id, 4);

    // One call to find and decrypt, and to encrypt and save.
    let wanted = Person::email_lookup_async(&engine, &"p3@example.org".to_owned())
        .await
        .unwrap();
    let mut found = person::Entity::find()
        .filter(person::Column::Email.is_in(wanted))
        .all_decrypted(db, &engine)
        .await
        .unwrap();
    found.sort_by_key(|p| p.id);
    assert_eq!(
        found,
        people.iter().filter(|p| p.id % 5 == 3).cloned().collect::<Vec<_>>()
    );
    let one = person::Entity::find_by_id(7).one_decrypted(db, &engine).await.unwrap();
    assert_eq!(one, Some(sample(7)));
    assert_eq!(
        person::Entity::find_by_id(999)
            .one_decrypted(db, &engine)
            .await
            .unwrap(),
        None
    );
    let mut newcomer = sample(51);
    newcomer
        .insert_encrypted::<person::ActiveModel, _, _>(db, &engine)
        .await
        .unwrap();
    newcomer.ssn = "051-99-0000".into();
    newcomer.phone = Some("+44 20 7946 0051".into());
    let stored = newcomer
        .update_encrypted::<person::ActiveModel, _, _>(db, &engine)
        .await
        .unwrap();
    assert!(stored.ssn.as_str().starts_with("vault:v1:"));
    let reread = person::Entity::find_by_id(51).one_decrypted(db, &engine).await.unwrap();
    assert_eq!(reread, Some(newcomer.clone()));
    let missing = sample(52)
        .update_encrypted::<person::ActiveModel, _, _>(db, &engine)
        .await
        .unwrap_err();
    assert!(matches!(missing, QueryError::Database(_)), "{missing}");

    // Copy row 2's ciphertext onto row 3 in SQL: decryption fails.
    let two = person::Entity::find_by_id(2).one(db).await.unwrap().unwrap();
    let mut three: person::ActiveModel = person::Entity::find_by_id(3).one(db).await.unwrap().unwrap().into();
    three.ssn = sea_orm::ActiveValue::Set(two.ssn.clone());
    sea_orm::ActiveModelTrait::update(three, db).await.unwrap();
    let moved = person::Entity::find_by_id(3).one(db).await.unwrap().unwrap();
    let err = moved.decrypt_async(&engine).await.unwrap_err();
    assert!(
        matches!(&err, Error::Field { source, .. } if matches!(**source, Error::DecryptionFailed)),
        "{err}"
    );

    // Plaintext planted in the column is an error on load, not data.
    db.execute_unprepared("UPDATE sea_people SET ssn = 'plain text' WHERE id = 5")
        .await
        .unwrap();
    assert!(person::Entity::find_by_id(5).one(db).await.is_err());
}

fn database_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{var} must be set under CI")
        }
        Err(_) => {
            eprintln!("SKIPPED: {var} is not set; this database test did not run");
            None
        }
    }
}

#[tokio::test]
async fn sea_orm_sqlite() {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    scenario(&db).await;
}

#[tokio::test]
async fn sea_orm_postgres() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_POSTGRES_URL") else {
        return;
    };
    scenario(&Database::connect(url).await.unwrap()).await;
}

#[tokio::test]
async fn sea_orm_mysql() {
    let Some(url) = database_url("ENCRYPTED_ATTR_TEST_MYSQL_URL") else {
        return;
    };
    scenario(&Database::connect(url).await.unwrap()).await;
}
