//! A secret given on the command line, in the environment or in the config file.

/// A secret given on the command line, in the environment or in the config file
/// (a token, a database URL with its password): `Debug` never shows it.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub(crate) struct SecretArg(String);

impl SecretArg {
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for SecretArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for SecretArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}
