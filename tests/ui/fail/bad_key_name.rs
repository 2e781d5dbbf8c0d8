use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted(key = "users-")]
    ssn: String,
}

fn main() {}
