use encrypted_attr::Encrypted;

#[derive(Encrypted)]
#[encrypted(table = "users")]
struct User {
    #[encrypted(convergent, json)]
    tags: Vec<String>,
}

fn main() {}
