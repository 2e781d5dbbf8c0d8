use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users", table = "people")]
struct User {
    #[encrypted(convergent, convergent)]
    email: String,
}

fn main() {}
