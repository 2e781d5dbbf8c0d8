use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users", id = "user_id")]
struct User {
    id: i64,
    #[encrypted]
    ssn: String,
}

fn main() {}
