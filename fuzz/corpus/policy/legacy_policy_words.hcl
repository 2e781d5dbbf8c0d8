path "transit/keys/*" {
  policy = "write"
}
path "sys/policy/*" {
  policy = "read"
}
path "transit/keys/admin" {
  policy = "deny"
}
path "auth/token/create" {
  policy = "sudo"
}
