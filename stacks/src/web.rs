//! The `web` stack: the investigators' web app, served from its own private bucket
//! behind CloudFront, and (by default) the Cognito user pool it logs in with.
//!
//! The security headers every app response carries are defined here once: the
//! CloudFront response-headers policy is built from them, and `chronoctl local`'s front
//! door sends the same ones.

/// `Strict-Transport-Security` max-age: two years.
pub const HSTS_MAX_AGE: i64 = 63_072_000;
/// `Referrer-Policy`: the authorization code in the callback URL never leaves as a referrer.
pub const REFERRER_POLICY: &str = "no-referrer";
/// `X-Frame-Options`.
pub const FRAME_OPTIONS: &str = "DENY";

/// The app's Content-Security-Policy: its own scripts only, and network access to itself
/// and the `connect` sources (API, WebSocket, evidence bucket, identity provider).
pub fn content_security_policy(connect: &[String]) -> String {
    let mut connect_src = vec!["'self'".to_owned()];
    connect_src.extend(connect.iter().cloned());
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; font-src 'self' data:; connect-src {}; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        connect_src.join(" ")
    )
}

/// The security headers of the app's responses, as (name, value).
pub fn security_headers(connect: &[String]) -> Vec<(String, String)> {
    [
        ("content-security-policy", content_security_policy(connect)),
        (
            "strict-transport-security",
            format!("max-age={HSTS_MAX_AGE}; includeSubDomains"),
        ),
        ("x-content-type-options", "nosniff".to_owned()),
        ("x-frame-options", FRAME_OPTIONS.to_owned()),
        ("referrer-policy", REFERRER_POLICY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}
