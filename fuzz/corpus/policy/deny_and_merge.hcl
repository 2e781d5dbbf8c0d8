path "transit/+/orders" {
  capabilities = ["create", "read", "update", "patch"]
}
path "transit/+/orders" {
  capabilities = ["delete", "deny"]
}
path "/transit/export/*" { capabilities = ["deny"] }
path "transit/hmac/*" { capabilities = ["update", "scan", "subscribe", "recover"] }
