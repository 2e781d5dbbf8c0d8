//! `encrypted-attr operator init|unseal|seal|status`: the seal operations for
//! people without the Vault CLI, over the server's HTTP API, with `bao operator`'s
//! flags (`-key-shares=5` works as well as `--key-shares 5`) and output shapes
//! (`-format=json` prints what `bao … -format=json` prints).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use super::secret::SecretArg;
use crate::error::CliError;

/// `operator` arguments.
#[derive(Debug, Args)]
pub(crate) struct OperatorArgs {
    #[command(subcommand)]
    command: OperatorCommand,
    /// Server address (also `ENCRYPTED_ATTR_ADDR`, `VAULT_ADDR` or `BAO_ADDR`);
    /// default http://127.0.0.1:8200.
    #[arg(long, global = true)]
    address: Option<String>,
    /// CA certificate (PEM) to trust for the server's TLS certificate.
    #[arg(long, global = true, value_name = "PEM")]
    ca_cert: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
enum OperatorCommand {
    /// Initialise the server: make the unseal key's shares and the root token,
    /// shown once.
    Init {
        /// Shares to split the unseal key into.
        #[arg(long, default_value_t = 5)]
        key_shares: u32,
        /// Shares needed to unseal.
        #[arg(long, default_value_t = 3)]
        key_threshold: u32,
    },
    /// Give one unseal share (hex or base64), or `-reset` the shares given so far.
    Unseal {
        /// The share; read from standard input when absent.
        key: Option<SecretArg>,
        /// Forget the shares given so far.
        #[arg(long)]
        reset: bool,
    },
    /// Seal the server (needs a root token: `--token`, `ENCRYPTED_ATTR_TOKEN`,
    /// `VAULT_TOKEN` or `BAO_TOKEN`).
    Seal {
        #[arg(long, hide_env_values = true)]
        token: Option<SecretArg>,
    },
    /// Show the seal status; exit code 2 when sealed, as `vault status`.
    Status,
}

/// What the command asks the process to exit with.
pub(crate) enum Outcome {
    Done,
    /// `status` of a sealed server.
    Sealed,
}

/// Turns Vault's single-dash long flags (`-key-shares=5`) into clap's
/// (`--key-shares=5`) for the `operator` subcommand.
pub(crate) fn vault_style_flags(args: Vec<String>) -> Vec<String> {
    let Some(start) = args.iter().position(|a| a == "operator") else {
        return args;
    };
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            let long_with_one_dash = arg.len() > 2
                && arg.starts_with('-')
                && !arg.starts_with("--")
                && arg.as_bytes()[1].is_ascii_alphabetic();
            if i > start && long_with_one_dash {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

fn env(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| std::env::var(name).ok())
}

impl OperatorArgs {
    pub(crate) fn run(&self) -> Result<Outcome, CliError> {
        let address = self
            .address
            .clone()
            .or_else(|| env(&["ENCRYPTED_ATTR_ADDR", "VAULT_ADDR", "BAO_ADDR"]))
            .unwrap_or_else(|| "http://127.0.0.1:8200".to_owned());
        let client = Client::new(address.trim_end_matches('/'), self.ca_cert.as_deref())?;
        match &self.command {
            OperatorCommand::Init {
                key_shares,
                key_threshold,
            } => {
                let (status, body) = client.call(
                    "PUT",
                    "sys/init",
                    None,
                    Some(json!({ "secret_shares": key_shares, "secret_threshold": key_threshold })),
                )?;
                let body = success(status, body)?;
                self.print_init(&body, *key_shares, *key_threshold);
                Ok(Outcome::Done)
            }
            OperatorCommand::Unseal { key, reset } => {
                let body = if *reset {
                    json!({ "reset": true })
                } else {
                    let key = match key {
                        Some(key) => key.expose().to_owned(),
                        None => read_share()?,
                    };
                    json!({ "key": key })
                };
                let (status, reply) = client.call("PUT", "sys/unseal", None, Some(body))?;
                let reply = success(status, reply)?;
                self.print_status(&reply);
                Ok(Outcome::Done)
            }
            OperatorCommand::Seal { token } => {
                let token = token
                    .as_ref()
                    .map(|t| t.expose().to_owned())
                    .or_else(|| env(&["ENCRYPTED_ATTR_TOKEN", "VAULT_TOKEN", "BAO_TOKEN"]))
                    .ok_or_else(|| CliError::Usage("give --token (or VAULT_TOKEN) of a root token".into()))?;
                let (status, body) = client.call("PUT", "sys/seal", Some(&token), None)?;
                success(status, body)?;
                println!("Success! Vault is sealed.");
                Ok(Outcome::Done)
            }
            OperatorCommand::Status => {
                let (status, body) = client.call("GET", "sys/seal-status", None, None)?;
                let body = success(status, body)?;
                self.print_status(&body);
                Ok(if body["sealed"] == json!(true) {
                    Outcome::Sealed
                } else {
                    Outcome::Done
                })
            }
        }
    }

    /// The shares and root token, as `bao operator init` prints them.
    fn print_init(&self, body: &Value, shares: u32, threshold: u32) {
        let keys_b64 = body["keys_base64"].as_array().cloned().unwrap_or_default();
        if self.format == Format::Json {
            let out = json!({
                "unseal_keys_b64": keys_b64,
                "unseal_keys_hex": body["keys"],
                "unseal_shares": shares,
                "unseal_threshold": threshold,
                "recovery_keys_b64": [],
                "recovery_keys_hex": [],
                "recovery_keys_shares": 0,
                "recovery_keys_threshold": 0,
                "root_token": body["root_token"],
            });
            println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
            return;
        }
        for (i, key) in keys_b64.iter().enumerate() {
            println!("Unseal Key {}: {}", i + 1, key.as_str().unwrap_or_default());
        }
        println!();
        println!(
            "Initial Root Token: {}",
            body["root_token"].as_str().unwrap_or_default()
        );
        println!();
        println!("The server is initialized with {shares} key shares and a key threshold of {threshold}.");
        println!("Please securely distribute the key shares printed above: they are shown once and");
        println!("never stored. When the server is sealed or restarted, {threshold} of them must be");
        println!("given again (`encrypted-attr operator unseal`) before it can serve.");
    }

    /// The seal status, as `bao status` prints it.
    fn print_status(&self, body: &Value) {
        if self.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(body).unwrap_or_default());
            return;
        }
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut rows = vec![
            ("Seal Type", text(&body["type"])),
            ("Initialized", text(&body["initialized"])),
            ("Sealed", text(&body["sealed"])),
            ("Total Shares", text(&body["n"])),
            ("Threshold", text(&body["t"])),
        ];
        if body["sealed"] == json!(true) {
            rows.push((
                "Unseal Progress",
                format!("{}/{}", text(&body["progress"]), text(&body["t"])),
            ));
            rows.push(("Unseal Nonce", text(&body["nonce"])));
        }
        rows.push(("Version", text(&body["version"])));
        rows.push(("Storage Type", text(&body["storage_type"])));
        rows.push(("HA Enabled", "false".to_owned()));
        println!("Key                Value");
        println!("---                -----");
        for (key, value) in rows {
            println!("{key:<18} {value}");
        }
    }
}

/// A share from standard input (a terminal echoes what is typed: pipe it from a
/// file or a password manager rather than typing it where others can see).
fn read_share() -> Result<String, CliError> {
    eprint!("Unseal Key: ");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("cannot read the share: {e}")))?;
    let share = line.trim().to_owned();
    if share.is_empty() {
        return Err(CliError::Usage("no share given".into()));
    }
    Ok(share)
}

/// The body of a 2xx answer, or the server's errors as the command's failure.
fn success(status: u16, body: Value) -> Result<Value, CliError> {
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let errors: Vec<String> = body["errors"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    Err(CliError::Usage(format!(
        "the server answered {status}: {}",
        errors.join("; ")
    )))
}

/// A small blocking HTTP client over the server's API.
struct Client {
    base: String,
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    fn new(address: &str, ca_cert: Option<&std::path::Path>) -> Result<Self, CliError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|source| crate::error::StartError::Io {
                doing: format!("cannot read {}", path.display()),
                source,
            })?;
            let certificate = reqwest::Certificate::from_pem(&pem)
                .map_err(|_| CliError::Usage(format!("{} is not a PEM certificate", path.display())))?;
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::Usage(format!("cannot make an HTTP client: {e}")))?;
        let runtime = super::command_runtime()?;
        Ok(Self {
            base: format!("{address}/v1"),
            http,
            runtime,
        })
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), CliError> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
        let mut request = self.http.request(method, format!("{}/{path}", self.base));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.runtime.block_on(async {
            let response = request
                .send()
                .await
                .map_err(|e| CliError::Usage(format!("cannot reach the server: {e}")))?;
            let status = response.status().as_u16();
            let bytes = response
                .bytes()
                .await
                .map_err(|e| CliError::Usage(format!("cannot read the server's answer: {e}")))?;
            let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Ok((status, value))
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn vaults_single_dash_flags_become_long_flags_after_operator_only() {
        let args = [
            "encrypted-attr",
            "-x",
            "operator",
            "init",
            "-key-shares=3",
            "-format=json",
            "-k",
        ]
        .map(str::to_owned)
        .to_vec();
        assert_eq!(
            super::vault_style_flags(args),
            [
                "encrypted-attr",
                "-x",
                "operator",
                "init",
                "--key-shares=3",
                "--format=json",
                "-k"
            ]
        );
    }
}
