path = "transit/keys"
