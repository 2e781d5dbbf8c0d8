path "transit/keys" { capabilities = ["read", "root"] }
