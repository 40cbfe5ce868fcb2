//! Path matching for both APIs. Routing is done here on the request path, not
//! on API Gateway's route parameters, so the same handler serves an HTTP API,
//! a function URL and `cargo lambda watch` alike.

use super::ApiError;
use http::Method;

/// A path split into its non-empty segments (a trailing slash is ignored).
pub fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// Fails with 405 unless `method` is one of `allowed` (a comma-separated
/// list, as the `Allow` header spells it).
pub fn allow(method: &Method, allowed: &'static str) -> Result<(), ApiError> {
    if allowed.split(", ").any(|m| m == method.as_str()) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(allowed))
    }
}
