path "transit/keys" { capabilities = ["read" }
