//! sea-orm: an entity whose encrypted columns are `Ciphertext`, and the application
//! struct deriving `Encrypted` onto it (`record = entity::Model`).
//!
//! Run: `cargo run --example sea_orm --features sea-orm` (SQLite in memory), or set
//! `DATABASE_URL` to a PostgreSQL or MySQL URL.

use encrypted_attr::{Encrypted, LocalEngine};
use sea_orm::{ColumnTrait, ConnectionTrait, Database, EntityTrait, QueryFilter};

#[allow(missing_docs, unreachable_pub)]
mod customer {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "customers")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub email: encrypted_attr::Ciphertext,
        pub card_last4: Option<encrypted_attr::Ciphertext>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The application's view of a customer.
#[allow(unreachable_pub)]
#[derive(Debug, Clone, PartialEq, Encrypted)]
#[encrypted(table = "customers", id = "id", record = customer::Model)]
pub struct Customer {
    /// Row id, bound into every ciphertext.
    pub id: i64,
    /// Searchable by equality.
    #[encrypted(convergent)]
    pub email: String,
    /// Random encryption; NULL stays NULL.
    #[encrypted]
    pub card_last4: Option<String>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite::memory:".into());
    let db = Database::connect(url).await?;
    db.execute_unprepared("DROP TABLE IF EXISTS customers").await?;
    db.execute_unprepared("CREATE TABLE customers (id BIGINT PRIMARY KEY, email TEXT NOT NULL, card_last4 TEXT)")
        .await?;

    let engine = LocalEngine::ephemeral()?;
    Customer::ensure_keys(&engine)?;
    let customers = vec![
        Customer {
            id: 1,
            email: "ada@example.com".into(),
            card_last4: Some("4242".into()),
        },
        Customer {
            id: 2,
            email: "grace@example.com".into(),
            card_last4: None,
        },
    ];
    let models = Customer::encrypt_all_async(&customers, &engine).await?;
    customer::Entity::insert_many(models.into_iter().map(customer::ActiveModel::from))
        .exec(&db)
        .await?;

    let wanted = Customer::email_lookup(&engine, &"ada@example.com".to_owned())?;
    let rows = customer::Entity::find()
        .filter(customer::Column::Email.is_in(wanted))
        .all(&db)
        .await?;
    println!("stored: {:?}", rows[0].email.as_str());
    let found = customer::Model::decrypt_all_async(rows, &engine).await?;
    println!("found: {:?}", found[0]);
    Ok(())
}
