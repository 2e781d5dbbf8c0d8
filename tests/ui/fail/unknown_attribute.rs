use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted(secret_key = "users_ssn")]
    ssn: String,
}

fn main() {}
