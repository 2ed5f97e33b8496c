//! The `web` stack: the investigators' web app, served from its own private bucket
//! behind CloudFront (origin access control, a security-headers policy, SPA routing by a
//! viewer-request function, TLS), and — when the config names no external identity
//! provider — the Cognito user pool the app signs in with (hosted sign-in pages, a public
//! app client with the authorization code flow + PKCE, the groups, and the
//! pre-token-generation trigger that turns groups into the roles and cases claims).
//!
//! It comes before `data`, `compute` and `api`: the sources bucket's CORS rule and the HTTP
//! API's need the app's origin, and the API's JWT authorizer needs the user pool's issuer
//! and client id, which exist only once the distribution and the pool do. So the CSP
//! names the region's API Gateway hosts (`*.execute-api.<region>.amazonaws.com`) rather
//! than the one API. The built app and its `config.json` are uploaded by `chronoctl
//! deploy`, not by CloudFormation.
//!
//! The security headers every app response carries are defined here once: the
//! CloudFront response-headers policy is built from them, and `chronoctl local`'s front
//! door sends the same ones.

use serde_json::json;

use crate::bootstrap::BootstrapOutputs;
use crate::config::Config;
use crate::model::{Attributes, Expr, ModelError, ParamHandle, Parameter, Policy, Template};
use crate::resources::compute::{Function, LambdaCode, LambdaEnvironment, Permission};
use crate::resources::iam::{Effect, Statement};
use crate::resources::web::{
    CacheBehavior, CloudFrontFunction, ContentSecurityPolicy, Distribution, DistributionConfig,
    FrameOptions, FunctionAssociation, FunctionConfig, HeaderValue, LambdaConfig, Origin,
    OriginAccessControl, OriginAccessControlConfig, Override, PreTokenGenerationConfig,
    ReferrerPolicy, ResponseHeadersPolicy, ResponseHeadersPolicyConfig, SecurityHeadersConfig,
    StrictTransportSecurity, UserPool, UserPoolClient, UserPoolDomain, UserPoolGroup,
    ViewerCertificate,
};
use crate::shared::{log_group, secure_bucket, service_role, tls_only_policy};
use crate::stack::{Asset, OutputRef, Stack, StackKind, tag_map, tags};
use chrono_contract::outputs;

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

/// Binary (and Lambda zip) of the Cognito pre-token-generation trigger.
pub const TOKEN_CLAIMS_BINARY: &str = chrono_contract::binaries::TOKEN_CLAIMS;
/// Group whose members get the `admin` role (runtime: `chrono_runtime::claims`).
pub const ADMIN_GROUP: &str = chrono_contract::groups::ADMIN;
/// Group whose members get the `analyst` role.
pub const ANALYST_GROUP: &str = chrono_contract::groups::ANALYST;
/// Group whose members may see every case.
pub const ALL_CASES_GROUP: &str = chrono_contract::groups::ALL_CASES;
/// `case-<case id>`: groups an administrator creates to grant one case.
pub const CASE_GROUP_PREFIX: &str = chrono_contract::groups::CASE_PREFIX;
/// The app's OIDC callback path (its redirect URI is `<app origin>/callback`).
pub const CALLBACK_PATH: &str = "/callback";
/// Scopes the app client may ask for.
pub const OAUTH_SCOPES: [&str; 3] = ["openid", "profile", "email"];
/// AWS managed cache policy `CachingOptimized`:
/// <https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html>
pub const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

/// The viewer-request function of the SPA routing: a path without a file extension is a
/// route of the app, served by `index.html`; files (`/assets/…`, `/config.json`) are
/// served as they are, and a missing one is a 404, not the app.
pub const SPA_ROUTING_JS: &str = "function handler(event) {
  var request = event.request;
  var last = request.uri.split('/').pop();
  if (last.indexOf('.') === -1) {
    request.uri = '/index.html';
  }
  return request;
}
";

/// Outputs later stacks and the deploy engine read.
#[derive(Debug, Clone)]
pub struct WebOutputs {
    /// `https://<distribution or custom domain>`: CORS of the API and the sources bucket.
    pub app_origin: OutputRef,
    /// The app's bucket (the deploy engine uploads the built app and `config.json`).
    pub app_bucket: OutputRef,
    /// The distribution (invalidations).
    pub distribution_id: OutputRef,
    /// The token issuer.
    pub jwt_issuer: OutputRef,
    /// The access tokens' audience.
    pub jwt_audience: OutputRef,
    /// The app's client id.
    pub app_client_id: OutputRef,
}

/// The built stack.
#[derive(Debug, Clone)]
pub struct WebStack {
    /// Template and wiring.
    pub stack: Stack,
    /// Outputs.
    pub outputs: WebOutputs,
}

/// The identity provider as the compute and api stacks use it: literals for an external
/// provider, the `web` stack's outputs (as parameters) for the user pool it creates.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Token issuer.
    pub issuer: Expr,
    /// Audience of access tokens.
    pub audience: Expr,
    /// The issuer's key set.
    pub jwks_url: Expr,
}

/// The identity provider of `cfg` in stack `s` (importing `web`'s outputs when the stacks
/// create the user pool).
pub fn identity(s: &mut Stack, cfg: &Config, web: &WebOutputs) -> Result<Identity, ModelError> {
    if let Some(ext) = cfg.auth.external() {
        return Ok(Identity {
            issuer: ext.issuer.into(),
            audience: ext.audience.into(),
            jwks_url: jwks_url_of(ext.issuer).into(),
        });
    }
    let issuer = s.import(
        "JwtIssuer",
        &web.jwt_issuer,
        Parameter::string("issuer of the user pool").pattern("^https://.+"),
    )?;
    let audience = s.import(
        "JwtAudience",
        &web.jwt_audience,
        Parameter::string("the app client of the user pool"),
    )?;
    Ok(Identity {
        issuer: issuer.r#ref(),
        audience: audience.r#ref(),
        jwks_url: Expr::sub(format!("${{{}}}/.well-known/jwks.json", issuer.id())),
    })
}

/// `{issuer}/.well-known/jwks.json` (Auth0, Cognito and most providers publish it there).
pub fn jwks_url_of(issuer: &str) -> String {
    format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/'))
}

/// `scheme://host` of a URL.
fn origin_of(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", rest.split('/').next().unwrap_or("")),
        None => url.to_owned(),
    }
}

/// Where the app connects besides itself (the CSP's `connect-src`): the HTTP and WebSocket
/// APIs of the region (their ids are only known after the api stack, which needs this
/// stack's origin first), the evidence bucket, the identity provider.
pub fn connect_sources(cfg: &Config) -> Vec<String> {
    let region = &cfg.region;
    let mut out = vec![
        format!("https://*.execute-api.{region}.amazonaws.com"),
        format!("wss://*.execute-api.{region}.amazonaws.com"),
        format!(
            "https://{}.s3.{region}.amazonaws.com",
            crate::data::sources_bucket_name(cfg)
        ),
    ];
    match cfg.auth.external() {
        Some(ext) => out.push(origin_of(ext.issuer)),
        None => {
            out.push(format!("https://cognito-idp.{region}.amazonaws.com"));
            out.push(format!(
                "https://{}.auth.{region}.amazoncognito.com",
                cfg.cognito_domain_prefix()
            ));
        }
    }
    out
}

/// Build the web stack of a config.
pub fn build(cfg: &Config) -> Result<WebStack, ModelError> {
    build_wired(cfg, &crate::bootstrap::build(cfg)?.outputs)
}

/// Build the web stack with the assets bucket of `bootstrap` (the trigger's code).
pub fn build_wired(cfg: &Config, bootstrap: &BootstrapOutputs) -> Result<WebStack, ModelError> {
    let mut s = Stack::new(
        cfg,
        StackKind::Web,
        "the web app behind CloudFront, its configuration and sign-in",
    );
    let prefix = cfg.prefix();
    /// Who signs users in: an external provider, or the pool this stack creates (whose
    /// trigger's code comes from the assets bucket).
    enum Idp<'a> {
        External(crate::config::ExternalIdp<'a>),
        Pool {
            assets: ParamHandle,
            code_key: ParamHandle,
        },
    }
    let idp = match cfg.auth.external() {
        Some(ext) => Idp::External(ext),
        None => Idp::Pool {
            assets: s.import(
                "AssetsBucketName",
                &bootstrap.assets_bucket,
                Parameter::string("assets bucket"),
            )?,
            code_key: s.asset(
                "TokenClaimsCodeKey",
                Asset::LambdaZip(TOKEN_CLAIMS_BINARY.into()),
                Parameter::string("S3 key of the chrono-token-claims zip (content hash)")
                    .pattern("^[A-Za-z0-9._/-]+\\.zip$"),
            )?,
        },
    };
    let t = &mut s.template;

    let bucket = t.add_with(
        "AppBucket",
        secure_bucket(
            cfg,
            format!("{prefix}-app-{}", cfg.account_id),
            None,
            json!({"Rules": [
                {"Id": "ExpireOldVersions", "Status": "Enabled",
                 "NoncurrentVersionExpiration": {"NoncurrentDays": 30}},
                {"Id": "AbortIncompleteUploads", "Status": "Enabled",
                 "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}
            ]}),
        ),
        Attributes::retention(Policy::Delete),
    )?;
    let oac = t.add(
        "AppOriginAccessControl",
        OriginAccessControl {
            origin_access_control_config: OriginAccessControlConfig {
                name: format!("{prefix}-app"),
                description: format!("{prefix}: CloudFront reads the app bucket"),
                origin_access_control_origin_type: "s3".into(),
                signing_behavior: "always".into(),
                signing_protocol: "sigv4".into(),
            },
        },
    )?;
    let headers = t.add(
        "AppSecurityHeaders",
        ResponseHeadersPolicy {
            response_headers_policy_config: ResponseHeadersPolicyConfig {
                name: format!("{prefix}-app-security-headers"),
                comment: format!("{prefix}: security headers of the web app"),
                security_headers_config: SecurityHeadersConfig {
                    content_security_policy: HeaderValue {
                        value: ContentSecurityPolicy {
                            content_security_policy: content_security_policy(&connect_sources(cfg)),
                        },
                        override_origin: true,
                    },
                    content_type_options: Override {
                        override_origin: true,
                    },
                    frame_options: HeaderValue {
                        value: FrameOptions {
                            frame_option: FRAME_OPTIONS.into(),
                        },
                        override_origin: true,
                    },
                    referrer_policy: HeaderValue {
                        value: ReferrerPolicy {
                            referrer_policy: REFERRER_POLICY.into(),
                        },
                        override_origin: true,
                    },
                    strict_transport_security: StrictTransportSecurity {
                        access_control_max_age_sec: HSTS_MAX_AGE,
                        include_subdomains: true,
                        override_origin: true,
                    },
                },
            },
        },
    )?;
    let routing = t.add(
        "AppSpaRouting",
        CloudFrontFunction {
            name: format!("{prefix}-spa-routing"),
            auto_publish: true,
            function_code: SPA_ROUTING_JS.into(),
            function_config: FunctionConfig {
                comment: "app routes are served by index.html".into(),
                runtime: "cloudfront-js-2.0".into(),
            },
        },
    )?;
    let (aliases, viewer_certificate) = match (&cfg.web.domain, &cfg.web.certificate_arn) {
        (Some(domain), Some(arn)) => (
            vec![domain.clone()],
            ViewerCertificate::Acm {
                acm_certificate_arn: arn.clone(),
                ssl_support_method: "sni-only".into(),
                minimum_protocol_version: "TLSv1.2_2021".into(),
            },
        ),
        _ => (
            Vec::new(),
            ViewerCertificate::Default {
                cloudfront_default_certificate: true,
            },
        ),
    };
    let distribution = t.add(
        "AppDistribution",
        Distribution {
            distribution_config: DistributionConfig {
                enabled: true,
                comment: format!("{prefix} web app"),
                default_root_object: "index.html".into(),
                http_version: "http2and3".into(),
                ipv6_enabled: true,
                price_class: cfg.web.price_class.clone(),
                aliases,
                origins: vec![Origin {
                    id: "app".into(),
                    domain_name: Expr::GetAtt(bucket.id().to_owned(), "RegionalDomainName".into()),
                    s3_origin_config: json!({"OriginAccessIdentity": ""}),
                    origin_access_control_id: oac.id_attr(),
                }],
                default_cache_behavior: CacheBehavior {
                    target_origin_id: "app".into(),
                    viewer_protocol_policy: "redirect-to-https".into(),
                    cache_policy_id: CACHING_OPTIMIZED.into(),
                    response_headers_policy_id: headers.r#ref(),
                    compress: true,
                    allowed_methods: vec!["GET".into(), "HEAD".into()],
                    cached_methods: vec!["GET".into(), "HEAD".into()],
                    function_associations: vec![FunctionAssociation {
                        event_type: "viewer-request".into(),
                        function_arn: routing.function_arn(),
                    }],
                },
                viewer_certificate,
            },
            tags: tags(cfg, &format!("{prefix}-app")),
        },
    )?;
    // TLS only, and CloudFront (this distribution) may read objects; nobody else.
    let mut policy = tls_only_policy(&bucket);
    policy.policy_document.statement.push(Statement {
        sid: "CloudFrontReadsTheApp".into(),
        effect: Effect::Allow,
        principal: Some(json!({"Service": "cloudfront.amazonaws.com"})),
        action: vec!["s3:GetObject".into()],
        resource: vec![Expr::sub(format!("${{{}.Arn}}/*", bucket.id()))],
        condition: Some(json!({"StringEquals": {"AWS:SourceArn": {"Fn::Sub":
            format!("arn:${{AWS::Partition}}:cloudfront::${{AWS::AccountId}}:distribution/${{{}}}", distribution.id())}}})),
    });
    t.add("AppBucketPolicy", policy)?;

    let origin: Expr = match &cfg.web.domain {
        Some(domain) => format!("https://{domain}").into(),
        None => Expr::sub(format!("https://${{{}.DomainName}}", distribution.id())),
    };
    let (issuer, audience, app_client) = match &idp {
        Idp::External(ext) => (
            Expr::from(ext.issuer),
            Expr::from(ext.audience),
            Expr::from(ext.app_client_id),
        ),
        Idp::Pool { assets, code_key } => {
            let client = user_pool(t, cfg, &origin, assets, code_key)?;
            (
                Expr::sub("https://cognito-idp.${AWS::Region}.amazonaws.com/${UserPool}"),
                client.clone(),
                client,
            )
        }
    };
    if matches!(idp, Idp::Pool { .. }) {
        s.export(
            "LoginDomain",
            "the user pool's hosted sign-in pages",
            Expr::sub("https://${UserPoolDomain}.auth.${AWS::Region}.amazoncognito.com"),
        )?;
    }
    let outputs = WebOutputs {
        app_origin: s.export(outputs::APP_ORIGIN, "origin of the web app", origin)?,
        app_bucket: s.export(
            outputs::APP_BUCKET,
            "bucket of the built app",
            bucket.r#ref(),
        )?,
        distribution_id: s.export(
            "DistributionId",
            "CloudFront distribution of the app",
            distribution.r#ref(),
        )?,
        jwt_issuer: s.export(outputs::JWT_ISSUER, "token issuer", issuer)?,
        jwt_audience: s.export(outputs::JWT_AUDIENCE, "audience of access tokens", audience)?,
        app_client_id: s.export(
            outputs::APP_CLIENT_ID,
            "the app's OIDC client id",
            app_client,
        )?,
    };
    Ok(WebStack { stack: s, outputs })
}

/// The user pool, its hosted domain, the app client, the groups and the trigger that
/// turns groups into claims. Returns the app client id (`Ref`).
fn user_pool(
    t: &mut Template,
    cfg: &Config,
    origin: &Expr,
    assets: &ParamHandle,
    code_key: &ParamHandle,
) -> Result<Expr, ModelError> {
    let prefix = cfg.prefix();
    let name = format!("{prefix}-token-claims");
    let logs = t.add_with(
        "TokenClaimsLogGroup",
        log_group(cfg, format!("/aws/lambda/{name}")),
        Attributes::retention(Policy::Delete),
    )?;
    let role = t.add(
        "TokenClaimsRole",
        service_role(
            cfg,
            "token-claims",
            "lambda.amazonaws.com",
            vec![],
            vec![Statement::allow(
                "WriteLogs",
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                vec![logs.arn()],
            )],
        ),
    )?;
    let function = t.add(
        "TokenClaimsFunction",
        Function {
            tags: tags(cfg, &name),
            function_name: name,
            description: "ChronoTracer: user-pool groups to the roles and cases claims".into(),
            runtime: "provided.al2023".into(),
            handler: "bootstrap".into(),
            architectures: vec!["arm64".into()],
            code: LambdaCode {
                s3_bucket: assets.r#ref(),
                s3_key: code_key.r#ref(),
            },
            role: role.arn(),
            memory_size: 128,
            timeout: 5,
            environment: LambdaEnvironment {
                variables: [
                    ("CHRONO_CASES_CLAIM", cfg.auth.cases_claim.clone()),
                    ("CHRONO_LOG_FORMAT", "json".to_owned()),
                    ("CHRONO_ROLES_CLAIM", cfg.auth.roles_claim.clone()),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into()))
                .collect(),
            },
            vpc_config: None,
            logging_config: json!({"LogGroup": logs.r#ref()}),
        },
    )?;
    let pool = t.add_with(
        "UserPool",
        UserPool {
            user_pool_name: format!("{prefix}-users"),
            user_pool_tier: "ESSENTIALS".into(),
            username_attributes: vec!["email".into()],
            auto_verified_attributes: vec!["email".into()],
            admin_create_user_config: json!({"AllowAdminCreateUserOnly": true}),
            policies: json!({"PasswordPolicy": {
                "MinimumLength": 12, "RequireLowercase": true, "RequireUppercase": true,
                "RequireNumbers": true, "RequireSymbols": true,
                "TemporaryPasswordValidityDays": 3}}),
            mfa_configuration: "ON".into(),
            enabled_mfas: vec!["SOFTWARE_TOKEN_MFA".into()],
            account_recovery_setting: json!({"RecoveryMechanisms": [
                {"Name": "verified_email", "Priority": 1}]}),
            deletion_protection: if cfg.stage == crate::Stage::Prod {
                "ACTIVE".into()
            } else {
                "INACTIVE".into()
            },
            lambda_config: LambdaConfig {
                pre_token_generation_config: PreTokenGenerationConfig {
                    lambda_arn: function.arn(),
                    lambda_version: "V2_0".into(),
                },
            },
            user_pool_tags: tag_map(cfg),
        },
        Attributes::retention(crate::data_policy(cfg)),
    )?;
    t.add(
        "TokenClaimsPermission",
        Permission {
            action: "lambda:InvokeFunction".into(),
            function_name: function.arn(),
            principal: "cognito-idp.amazonaws.com".into(),
            source_arn: pool.arn(),
        },
    )?;
    t.add(
        "UserPoolDomain",
        UserPoolDomain {
            domain: cfg.cognito_domain_prefix(),
            user_pool_id: pool.r#ref(),
        },
    )?;
    let client = t.add(
        "AppClient",
        UserPoolClient {
            user_pool_id: pool.r#ref(),
            client_name: format!("{prefix}-app"),
            generate_secret: false,
            allowed_oauth_flows_user_pool_client: true,
            allowed_oauth_flows: vec!["code".into()],
            allowed_oauth_scopes: OAUTH_SCOPES.map(String::from).to_vec(),
            callback_urls: vec![join_origin(origin, CALLBACK_PATH)],
            logout_urls: vec![join_origin(origin, "/")],
            supported_identity_providers: vec!["COGNITO".into()],
            explicit_auth_flows: vec!["ALLOW_REFRESH_TOKEN_AUTH".into()],
            prevent_user_existence_errors: "ENABLED".into(),
            enable_token_revocation: true,
            access_token_validity: 60,
            id_token_validity: 60,
            refresh_token_validity: 12,
            token_validity_units: [
                ("AccessToken", "minutes"),
                ("IdToken", "minutes"),
                ("RefreshToken", "hours"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        },
    )?;
    for (id, group, description) in [
        (
            "AdminGroup",
            ADMIN_GROUP,
            "role admin: cases, uploads, processing",
        ),
        (
            "AnalystGroup",
            ANALYST_GROUP,
            "role analyst: read, search, labels, AI",
        ),
        (
            "AllCasesGroup",
            ALL_CASES_GROUP,
            "may see every case (otherwise: groups case-<id>)",
        ),
    ] {
        t.add(
            id,
            UserPoolGroup {
                user_pool_id: pool.r#ref(),
                group_name: group.into(),
                description: description.into(),
            },
        )?;
    }
    Ok(client.r#ref())
}

/// `origin` + `path` (the origin is a literal or an `Fn::Sub`).
fn join_origin(origin: &Expr, path: &str) -> Expr {
    match origin {
        Expr::Str(s) => format!("{s}{path}").into(),
        Expr::Sub(s, vars) => Expr::Sub(format!("{s}{path}"), vars.clone()),
        other => Expr::join("", vec![other.clone(), path.into()]),
    }
}
