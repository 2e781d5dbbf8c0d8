use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted(normalize = "lowercase")]
    email: String,
}

fn main() {}
