//! API Gateway's HTTP API event (payload format 2.0) as the stand-ins send
//! it to `entry-api` and `admin-api`, built in one place on
//! `aws_lambda_events`' own type: the gateway stand-in, the drill, the bench
//! and the tests all build their requests here, so the shape the functions
//! are tested with is the shape the crate (and lambda_http) read.

use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerIamDescription, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequest,
};
use base64::Engine;
use chrono::{DateTime, Utc};
use http::{HeaderName, HeaderValue, Method};
use serde_json::Value;

/// One request as API Gateway hands it to the function.
#[derive(Debug, Clone)]
pub struct GatewayEvent(ApiGatewayV2httpRequest);

impl GatewayEvent {
    /// `method` on `path`; a query string after `?` arrives split off in
    /// `rawQueryString`, as API Gateway sends it. The route is `$default`
    /// until [`GatewayEvent::route`] names one.
    pub fn new(method: &str, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let mut event = ApiGatewayV2httpRequest::default();
        event.version = Some("2.0".into());
        event.route_key = Some("$default".into());
        event.raw_path = Some(path.into());
        event.raw_query_string = Some(query.into());
        let context = &mut event.request_context;
        context.route_key = Some("$default".into());
        context.stage = Some("$default".into());
        context.request_id = Some("local".into());
        context.account_id = Some("000000000000".into());
        context.http.method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        context.http.path = Some(path.into());
        context.http.protocol = Some("HTTP/1.1".into());
        context.http.source_ip = Some("127.0.0.1".into());
        Self(event).from_api("local")
    }

    /// Which stand-in sent it: the API id, domain and user agent.
    pub fn from_api(mut self, api: &str) -> Self {
        let context = &mut self.0.request_context;
        context.apiid = Some(api.into());
        context.domain_prefix = Some(api.into());
        context.domain_name = Some(format!("{api}.local"));
        context.http.user_agent = Some(format!("fanrush-{api}"));
        self
    }

    /// The route that matched, and its path parameters.
    pub fn route(mut self, route_key: &str, parameters: &[(&str, &str)]) -> Self {
        self.0.route_key = Some(route_key.into());
        self.0.request_context.route_key = Some(route_key.into());
        self.0.path_parameters = parameters.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self
    }

    /// A header; a repeated one is joined with a comma, as API Gateway does.
    /// A name or value HTTP cannot carry is left out, as no client could send it.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return self;
        };
        let joined = match self.0.headers.get(&name) {
            Some(previous) => [previous.as_bytes(), b",", value.as_bytes()].concat(),
            None => value.as_bytes().to_vec(),
        };
        // from_bytes, as lambda_http reads them: UTF-8 beyond ASCII passes.
        if let Ok(v) = HeaderValue::from_bytes(&joined) {
            self.0.headers.insert(name, v);
        }
        self
    }

    /// The body: text as it is, anything that is not UTF-8 base64-encoded
    /// with `isBase64Encoded`, as API Gateway does. An empty body is none.
    pub fn body(mut self, body: &[u8]) -> Self {
        (self.0.body, self.0.is_base64_encoded) = match std::str::from_utf8(body) {
            _ if body.is_empty() => (None, false),
            Ok(text) => (Some(text.to_owned()), false),
            Err(_) => (Some(base64::engine::general_purpose::STANDARD.encode(body)), true),
        };
        self
    }

    /// A body already base64-encoded by the caller (`isBase64Encoded`).
    pub fn base64_body(mut self, encoded: &str) -> Self {
        self.0.body = Some(encoded.to_owned());
        self.0.is_base64_encoded = true;
        self
    }

    /// The fan the JWT authorizer verified: its `sub` claim.
    pub fn fan(self, sub: &str) -> Self {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("sub".into(), sub.into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        self.authorizer(authorizer)
    }

    /// The operator the IAM authorizer verified (a SigV4-signed call).
    pub fn operator(self, user_arn: &str) -> Self {
        let mut iam = ApiGatewayRequestAuthorizerIamDescription::default();
        iam.access_key = Some("AKIALOCAL".into());
        iam.account_id = Some("000000000000".into());
        iam.caller_id = Some("AIDALOCAL".into());
        iam.user_arn = Some(user_arn.into());
        iam.user_id = Some("AIDALOCAL".into());
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.iam = Some(iam);
        self.authorizer(authorizer)
    }

    /// Any authorizer block, as the request context carries it.
    pub fn authorizer(mut self, authorizer: ApiGatewayRequestAuthorizer) -> Self {
        self.0.request_context.authorizer = Some(authorizer);
        self
    }

    /// When API Gateway received it (`time` and `timeEpoch`).
    pub fn received_at(mut self, at: DateTime<Utc>) -> Self {
        let context = &mut self.0.request_context;
        context.time = Some(at.format("%d/%b/%Y:%H:%M:%S %z").to_string());
        context.time_epoch = at.timestamp_millis();
        self
    }

    /// The request id Lambda's logs carry.
    pub fn request_id(mut self, id: &str) -> Self {
        self.0.request_context.request_id = Some(id.into());
        self
    }

    /// The event as JSON, as the Runtime API delivers it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(&self.0).expect("an API Gateway event serializes")
    }

    /// The event as lambda_http reads it in a function: what a handler gets.
    pub fn into_request(self) -> Result<lambda_http::Request, serde_json::Error> {
        lambda_http::request::from_str(&self.to_json().to_string())
    }
}
