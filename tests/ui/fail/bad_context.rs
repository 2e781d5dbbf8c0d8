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
}

fn main() {}
