//! Who is calling. In production the fan is the JWT authorizer's `sub` claim
//! and an admin is whatever IAM identity API Gateway verified; headers are
//! never trusted. Only `AUTH_MODE=dev` lets `x-fan-id` name the fan and lets
//! admin calls through without IAM, for local runs and tests.

use super::ApiError;
use crate::rules::domain::FanId;
use http::StatusCode;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// Where identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Production: the fan is the JWT authorizer's `sub`; admins need an IAM
    /// identity in the request context.
    Authorizer,
    /// Local development only: `x-fan-id` names the fan and admin calls need
    /// no IAM identity. Only `AUTH_MODE=dev` switches it on.
    Dev,
}

/// The calling fan.
pub fn fan(req: &Request, mode: AuthMode) -> Result<FanId, ApiError> {
    let claimed = match mode {
        // UTF-8 in the header is taken as it is (a control character, or
        // bytes that are not UTF-8, fail the fan id's own check).
        AuthMode::Dev => {
            req.headers().get("x-fan-id").map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or("\u{0}").to_owned())
        }
        AuthMode::Authorizer => None,
    };
    let sub = claimed.or_else(|| jwt_subject(req));
    match sub {
        Some(sub) => Ok(FanId::parse(&sub)?),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "no fan identity in the request")),
    }
}

fn jwt_subject(req: &Request) -> Option<String> {
    match req.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.authorizer.as_ref()?.jwt.as_ref()?.claims.get("sub").cloned(),
        _ => None,
    }
}

/// The calling operator's IAM identity (its ARN), or `dev`.
pub fn admin(req: &Request, mode: AuthMode) -> Result<String, ApiError> {
    let iam = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.authorizer.as_ref().and_then(|a| a.iam.as_ref()),
        _ => None,
    };
    match (iam.and_then(|i| i.user_arn.clone().or_else(|| i.caller_id.clone())), mode) {
        (Some(arn), _) => Ok(arn),
        (None, AuthMode::Dev) => Ok("dev".to_owned()),
        (None, AuthMode::Authorizer) => {
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "admin calls need an IAM-signed request"))
        }
    }
}
