use encrypted_attr::Encrypted;

#[derive(Encrypted)]
struct Secret(#[encrypted] String);

fn main() {}
