# The application's policy: encrypt and decrypt with its keys only.
path "transit/encrypt/users_*" {
  capabilities = ["update"]
}

path "transit/decrypt/users_*" {
  capabilities = ["update"]
}

path "transit/keys/+" {
  capabilities = ["read", "list"]
}
