path "transit/+*" { capabilities = ["read"] }
