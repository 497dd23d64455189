//! Error types of the library. Configuration errors are fatal at start; input errors
//! are poison for one record (dead-lettered, counted) and never stop a run; store
//! errors are fatal (the store is never written half-way).

use std::path::PathBuf;

use thiserror::Error;

/// A configuration file that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid lockstep configuration.
    #[error("invalid config{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Invalid {
        /// The file, when read from one.
        path: Option<PathBuf>,
        /// The key, the value, and what is allowed.
        message: String,
    },
}

impl ConfigError {
    /// Attaches the file name to a parse error.
    pub fn in_file(self, file: &std::path::Path) -> ConfigError {
        match self {
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: Some(file.to_path_buf()),
                message,
            },
            other => other,
        }
    }
}

/// A record that cannot be decoded or normalised: it goes to the dead letters.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{reason}")]
pub struct DecodeError {
    /// Why the record was rejected.
    pub reason: String,
    /// Whether the record could not be read for now only (the schema registry down or
    /// slow): read again later, it is no dead letter.
    pub transient: bool,
}

impl DecodeError {
    /// A decode error with the given reason.
    pub fn new(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
            transient: false,
        }
    }

    /// A record that cannot be read now, for `reason`, and may be later.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        DecodeError {
            reason: reason.into(),
            transient: true,
        }
    }
}

/// A failure of the RocksDB store or of its encoded contents.
#[derive(Debug, Error)]
pub enum StoreError {
    /// RocksDB refused an operation.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A stored value does not decode: the store was written by another version.
    #[error("corrupt value in column family {cf}: {message}")]
    Corrupt {
        /// The column family.
        cf: &'static str,
        /// What failed.
        message: String,
    },
    /// The store was written by an incompatible configuration or version.
    #[error("{0}")]
    Incompatible(String),
}
