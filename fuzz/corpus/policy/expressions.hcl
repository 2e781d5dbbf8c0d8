path "a/${var.x}/b" {
  capabilities = [for c in ["read"] : c]
  x = <<EOT
heredoc
EOT
}
