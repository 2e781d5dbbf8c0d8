use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted(key = "users-")]
    ssn: String,
    #[encrypted(key = "a{b}")]
    email: String,
    #[encrypted(bogus)]
    phone: String,
}

fn main() {}
