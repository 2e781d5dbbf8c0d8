use encrypted_attr::Encrypted;

struct Address {
    street: String,
}

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted]
    address: Address,
}

fn main() {}
