use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    name: String,
}

fn main() {}
