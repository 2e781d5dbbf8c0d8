use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "tickets")]
struct Ticket {
    #[encrypted]
    secret_tenant: String,
    #[encrypted(context = "tenant")]
    body: String,
    #[encrypted(context = "secret_tenant")]
    note: String,
    maybe_tenant: Option<String>,
    #[encrypted(context = "maybe_tenant")]
    memo: String,
}

fn main() {}
