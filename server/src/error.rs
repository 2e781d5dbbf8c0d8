//! The errors of start-up and of the command line, typed, each with the message an
//! operator reads (never a secret: no token, key, URL or value). Request errors are
//! Vault's, in `crate::http`.

/// Why the server could not start (or stopped).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The flags or the configuration file are wrong.
    #[error("{0}")]
    Config(String),
    /// An operating-system call failed (`doing` says which, e.g. "cannot listen on …").
    #[error("{doing}: {source}")]
    Io {
        /// What was being done, as the message's start.
        doing: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The storage could not be opened (the reason, with its causes).
    #[error("{0}")]
    Storage(String),
    /// The seal configuration could not be read or is damaged.
    #[error("{0}")]
    SealConfig(String),
    /// The tokens, policies or audit devices could not be opened.
    #[error("the server's stores could not be opened: {0}")]
    Stores(#[source] encrypted_attr::Error),
    /// The engine could not be made.
    #[error("{0}")]
    Engine(#[source] encrypted_attr::Error),
    /// The TLS certificate or key cannot be used.
    #[error("{0}")]
    Tls(String),
}

/// Why an admin command failed, or did not finish its work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The arguments are wrong (a name, a duration, a missing flag).
    #[error("{0}")]
    Usage(String),
    /// The database refused or failed (its message only: never the URL or values).
    #[error("{0}")]
    Database(String),
    /// The engine refused or failed.
    #[error("{0}")]
    Engine(#[from] encrypted_attr::Error),
    /// The server could not start, or stopped on an error.
    #[error(transparent)]
    Start(#[from] StartError),
    /// `rewrap` or `migrate` left rows unfinished: skipped (each was reported) or
    /// written meanwhile by someone else without the encrypted column.
    #[error("some rows were left as they were (see above); run the command again once they are fixed")]
    RowsLeft,
    /// `migrate --verify` found rows that do not decrypt to their plaintext.
    #[error("verification failed: some rows do not decrypt to their plaintext")]
    VerificationFailed,
    /// `retire` found nothing it could retire.
    #[error("nothing retired")]
    NothingRetired,
}

/// A key name or version refused as the engine refuses it.
impl From<encrypted_attr::NameError> for CliError {
    fn from(error: encrypted_attr::NameError) -> Self {
        Self::Engine(error.into())
    }
}

/// The sources of `error`, joined (`Error::Storage` keeps its reason there).
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut source = error.source();
    while let Some(cause) = source {
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
