//! Transfers: the one place that moves a file to or from Norman and checks it arrived whole.
//!
//! - [`Uploads`]: allocate a socket (`file-push/socket/pair/*`), stream the file through the fused
//!   hash + encrypt writer ([`crate::socket::UploadStream`]), complete with the checksum
//!   (`file-push/socket/complete`); progress per chunk; cancel by dropping the future or
//!   [`Upload::abort`] (the connection is reset, the backend keeps nothing).
//! - [`Downloads`]: request a file (`retrieve/*`) and hand back a [`VerifiedStream`], which hashes
//!   every chunk and checks the length the backend announced, or write it to a file atomically
//!   ([`VerifiedStream::save_to`], through [`crate::streaming::PartFile`]).
//! - [`Verifier`]: the hash-and-length check itself, for bodies that come from elsewhere (the
//!   backend's link pulls).
//!
//! The C layer, the `norman` program (push, pull, demo) and `norman serve` call these; none of them
//! holds its own copy of this logic.
//!
//! A checked body, offline:
//!
//! ```
//! use norman::transfer::Verifier;
//! use norman::Checksum;
//!
//! let mut verifier = Verifier::new(Some(11));
//! verifier.update(b"hello ");
//! verifier.update(b"world");
//! let summary = verifier.finish("reading the example")?;
//! assert_eq!((summary.bytes, summary.checksum), (11, Checksum::of(b"hello world")));
//!
//! let mut short = Verifier::new(Some(11));
//! short.update(b"hello");
//! assert_eq!(short.finish("reading the example").unwrap_err().kind(), norman::ErrorKind::Truncated);
//! # Ok::<(), norman::Error>(())
//! ```
//!
//! A push and a pull (they need a server):
//!
//! ```no_run
//! use std::path::Path;
//! use norman::transfer::{Downloads, FileTarget, UploadTarget, Uploads};
//! # async fn demo() -> norman::Result<()> {
//! let config = norman::AppConfig::from_env()?;
//! let http = norman::http::HttpClient::new(&config)?.with_token("token");
//! let target = UploadTarget::Asset {
//!     account_id: "account-1".into(),
//!     model_id: "model-id".into(),
//!     asset_id: "asset-id".into(),
//! };
//! let sent = Uploads::new(&http, &config)
//!     .push_file(&target, Path::new("weights.bin"), |sent, total| eprintln!("{sent}/{total}"))
//!     .await?;
//! let got = Downloads::new(&http)
//!     .to_file(&FileTarget::from(target), Path::new("copy.bin"), |received| eprintln!("{received}"))
//!     .await?;
//! assert_eq!(sent.checksum, got.checksum);
//! # Ok(())
//! # }
//! ```

mod download;
mod upload;

pub use download::{DownloadSummary, Downloads, VerifiedStream, Verifier};
pub use upload::{Upload, UploadTarget, Uploads};

/// A file Norman stores: a model asset, an invocation input or an invocation output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileTarget {
    /// A model asset.
    Asset {
        /// Id of the account.
        account_id: String,
        /// Id of the model.
        model_id: String,
        /// Id of the asset.
        asset_id: String,
    },
    /// An invocation input.
    Input {
        /// Id of the account.
        account_id: String,
        /// Id of the model.
        model_id: String,
        /// Id of the invocation.
        invocation_id: String,
        /// Id of the input.
        input_id: String,
    },
    /// An invocation output.
    Output {
        /// Id of the account.
        account_id: String,
        /// Id of the model.
        model_id: String,
        /// Id of the invocation.
        invocation_id: String,
        /// Id of the output.
        output_id: String,
    },
}

impl From<UploadTarget> for FileTarget {
    fn from(target: UploadTarget) -> Self {
        match target {
            UploadTarget::Asset { account_id, model_id, asset_id } => {
                FileTarget::Asset { account_id, model_id, asset_id }
            }
            UploadTarget::Input { account_id, model_id, invocation_id, input_id } => {
                FileTarget::Input { account_id, model_id, invocation_id, input_id }
            }
        }
    }
}

impl TryFrom<FileTarget> for UploadTarget {
    type Error = crate::Error;

    /// Outputs are written by Norman, never uploaded.
    fn try_from(target: FileTarget) -> crate::Result<Self> {
        match target {
            FileTarget::Asset { account_id, model_id, asset_id } => {
                Ok(UploadTarget::Asset { account_id, model_id, asset_id })
            }
            FileTarget::Input { account_id, model_id, invocation_id, input_id } => {
                Ok(UploadTarget::Input { account_id, model_id, invocation_id, input_id })
            }
            FileTarget::Output { .. } => {
                Err(crate::Error::InvalidArgument("outputs cannot be uploaded".into()))
            }
        }
    }
}
