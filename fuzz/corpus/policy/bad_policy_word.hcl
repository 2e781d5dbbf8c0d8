path "transit/keys" { policy = "admin" }
