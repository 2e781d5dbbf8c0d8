use encrypted_attr::{Encrypted, LocalEngine};

// One mistake in the attributes: the error names it, and the code below that uses
// the record and the generated methods reports nothing more.
#[derive(Encrypted)]
#[encrypted(table = "users", record(name = "UserRow"))]
struct User {
    id: i64,
    #[encrypted(convergent, json)]
    email: String,
}

fn main() {
    let engine = LocalEngine::ephemeral().unwrap();
    let user = User { id: 1, email: String::new() };
    let row: UserRow = user.encrypt(&engine).unwrap();
    let _users: Vec<User> = UserRow::decrypt_all(vec![row], &engine).unwrap();
    User::ensure_keys(&engine).unwrap();
}
