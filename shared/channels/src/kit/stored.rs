//! A request body a provider stored elsewhere and only points to (Amazon SES's
//! S3 action): fetched by a channel's `prepare` after verification, carried to
//! `parse` in the request's extensions.

use bytes::Bytes;
use switchboard_domain::ObjectReader;

use super::{VerifyError, WebhookRequest};

/// Largest stored body read (SES's S3 action keeps mail up to 40 MB; a
/// support mail beyond this is not read).
pub const MAX_STORED_BYTES: usize = 10 * 1024 * 1024;

/// The fetched body, in the request's extensions.
#[derive(Debug, Clone)]
pub struct StoredBody(pub Bytes);

/// Fetches `bucket`/`key` and attaches it to the request. An absent object
/// attaches nothing (`parse` then says what is missing); a failing store is
/// [`VerifyError::Unavailable`], so the provider retries.
pub async fn attach(
    objects: &dyn ObjectReader,
    request: &mut WebhookRequest,
    bucket: &str,
    key: &str,
) -> Result<(), VerifyError> {
    match objects.read(bucket, key, MAX_STORED_BYTES).await {
        Ok(Some(bytes)) => {
            request.extensions_mut().insert(StoredBody(bytes.into()));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => {
            tracing::warn!(error = %switchboard_domain::error_chain(&error), "stored body not read");
            Err(VerifyError::Unavailable("stored message"))
        }
    }
}

/// The body `prepare` attached, if any.
pub fn stored(request: &WebhookRequest) -> Option<&Bytes> {
    request.extensions().get::<StoredBody>().map(|body| &body.0)
}
