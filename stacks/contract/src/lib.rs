//! `chrono-contract`: the names that cross ChronoTracer's crates, defined once.
//!
//! The stacks write them into templates, the provisioner reads stack outputs and starts the
//! local runtime with them, the runtime reads its settings and writes its artifacts under
//! them. Every side uses the constants below, so a renamed variable, output or key is a
//! compile error instead of a deployment that silently reads nothing.
//!
//! This crate has no dependencies and does no I/O: `chrono-stacks` (which must not know
//! the AWS SDK) and `chrono-runtime` (which must not know CloudFormation) both depend on
//! it. Only names and small numbers live here; behaviour stays with its owner.

/// Environment variables the runtime reads. The compute stack sets them on every Lambda
/// and task ([`RUNTIME`](env::RUNTIME), [`AUTHORIZER`](env::AUTHORIZER)); `chronoctl local`
/// sets them on the local processes.
pub mod env {
    /// Which model provider filter-ai and the AI chat use: `bedrock` or `local`.
    pub const AI_PROVIDER: &str = "CHRONO_AI_PROVIDER";
    /// Name of the `artifacts` bucket (parts, normalized events, markers).
    pub const ARTIFACTS_BUCKET: &str = "CHRONO_ARTIFACTS_BUCKET";
    /// JWT claim with the cases a caller may see.
    pub const CASES_CLAIM: &str = "CHRONO_CASES_CLAIM";
    /// DynamoDB table of stored AI conversations.
    pub const CONVERSATIONS_TABLE: &str = "CHRONO_CONVERSATIONS_TABLE";
    /// Customer of the deployment (logs, metrics).
    pub const CUSTOMER: &str = "CHRONO_CUSTOMER";
    /// Aurora writer endpoint.
    pub const DB_HOST: &str = "CHRONO_DB_HOST";
    /// Database name on the cluster.
    pub const DB_NAME: &str = "CHRONO_DB_NAME";
    /// Aurora port.
    pub const DB_PORT: &str = "CHRONO_DB_PORT";
    /// ARN of the Secrets Manager secret with the database credentials.
    pub const DB_SECRET_ARN: &str = "CHRONO_DB_SECRET_ARN";
    /// Bedrock model (or inference profile) id of the guard model.
    pub const GUARD_MODEL_ID: &str = "CHRONO_GUARD_MODEL_ID";
    /// DynamoDB table of cached guard verdicts.
    pub const INTENT_CACHE_TABLE: &str = "CHRONO_INTENT_CACHE_TABLE";
    /// Expected `aud` of tokens.
    pub const JWT_AUDIENCE: &str = "CHRONO_JWT_AUDIENCE";
    /// Expected `iss` of tokens.
    pub const JWT_ISSUER: &str = "CHRONO_JWT_ISSUER";
    /// `json` (in AWS) or `text` logs.
    pub const LOG_FORMAT: &str = "CHRONO_LOG_FORMAT";
    /// Bedrock model (or inference profile) id of the main model.
    pub const MAIN_MODEL_ID: &str = "CHRONO_MAIN_MODEL_ID";
    /// ARN of the pipeline state machine the API starts.
    pub const PIPELINE_STATE_MACHINE_ARN: &str = "CHRONO_PIPELINE_STATE_MACHINE_ARN";
    /// JWT claim with the caller's roles (`admin`, `analyst`).
    pub const ROLES_CLAIM: &str = "CHRONO_ROLES_CLAIM";
    /// DynamoDB table of AI chat sessions.
    pub const SESSIONS_TABLE: &str = "CHRONO_SESSIONS_TABLE";
    /// Name of the `sources` bucket (uploaded evidence).
    pub const SOURCES_BUCKET: &str = "CHRONO_SOURCES_BUCKET";
    /// Stage of the deployment (`prod`, `staging`, `preview`, `local`).
    pub const STAGE: &str = "CHRONO_STAGE";

    /// URL of the identity provider's key set (the authorizer; local processes).
    pub const JWKS_URL: &str = "CHRONO_JWKS_URL";
    /// A key set in a file instead of [`JWKS_URL`] (tests).
    pub const JWKS_FILE: &str = "CHRONO_JWKS_FILE";
    /// `on`: filter-ai serves the API Gateway WebSocket integration path, verifying the
    /// token the `$connect` authorizer passes (set on filter-ai in AWS only).
    pub const WS_GATEWAY: &str = "CHRONO_WS_GATEWAY";
    /// Where filter-ai pushes WebSocket replies instead of the connection's own domain.
    pub const WS_CALLBACK_URL: &str = "CHRONO_WS_CALLBACK_URL";
    /// Statement timeout of request sessions, in milliseconds.
    pub const DB_STATEMENT_TIMEOUT_MS: &str = "CHRONO_DB_STATEMENT_TIMEOUT_MS";
    /// Bound of one model call, in milliseconds.
    pub const AI_MODEL_TIMEOUT_MS: &str = "CHRONO_AI_MODEL_TIMEOUT_MS";
    /// Read-only role the AI path sets (empty: none).
    pub const AI_DB_ROLE: &str = "CHRONO_AI_DB_ROLE";
    /// Listen address of filter-ai.
    pub const AI_ADDR: &str = "CHRONO_AI_ADDR";
    /// A PostgreSQL URL; when set it wins over the Aurora settings (local mode, tests).
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// Jobs the local pipeline worker runs at once (plus its express slot).
    pub const WORKER_CONCURRENCY: &str = "CHRONO_WORKER_CONCURRENCY";
    /// Seconds a local worker's claim on a job holds without renewal.
    pub const WORKER_LEASE_SECS: &str = "CHRONO_WORKER_LEASE_SECS";

    /// What every Lambda and task of the compute stack receives, sorted.
    pub const RUNTIME: [&str; 20] = [
        AI_PROVIDER,
        ARTIFACTS_BUCKET,
        CASES_CLAIM,
        CONVERSATIONS_TABLE,
        CUSTOMER,
        DB_HOST,
        DB_NAME,
        DB_PORT,
        DB_SECRET_ARN,
        GUARD_MODEL_ID,
        INTENT_CACHE_TABLE,
        JWT_AUDIENCE,
        JWT_ISSUER,
        LOG_FORMAT,
        MAIN_MODEL_ID,
        PIPELINE_STATE_MACHINE_ARN,
        ROLES_CLAIM,
        SESSIONS_TABLE,
        SOURCES_BUCKET,
        STAGE,
    ];

    /// What the WebSocket `$connect` authorizer receives (to verify a token, nothing else),
    /// sorted.
    pub const AUTHORIZER: [&str; 6] = [
        CASES_CLAIM,
        JWKS_URL,
        JWT_AUDIENCE,
        JWT_ISSUER,
        LOG_FORMAT,
        ROLES_CLAIM,
    ];
}

/// Tag keys on stacks and resources. The stacks write them into templates, the deploy
/// engine puts them on stacks, `chronoctl preview list|down|gc` selects stacks by them.
pub mod tags {
    /// The customer (for a preview: the preview's name).
    pub const CUSTOMER: &str = "chrono:customer";
    /// The stage (`prod`, `staging`, `preview`, `local`).
    pub const STAGE: &str = "chrono:stage";
    /// `chronoctl` on everything the tool manages; `preview gc` touches nothing without it.
    pub const MANAGED_BY: &str = "chrono:managed-by";
    /// Value of [`MANAGED_BY`].
    pub const MANAGED_BY_CHRONOCTL: &str = "chronoctl";
    /// `true` on the stacks of a developer preview; `preview gc` touches nothing without it.
    pub const PREVIEW: &str = "chrono:preview";
    /// When a preview may be deleted (RFC 3339 UTC).
    pub const EXPIRES_AT: &str = "chrono:expires-at";
    /// Who created a preview (the caller's ARN from STS).
    pub const OWNER: &str = "chrono:owner";
    /// The config a preview was derived from (`<customer>-<stage>`).
    pub const PREVIEW_BASE: &str = "chrono:preview-base";
    /// The short names of the stacks a stack depends on, space-separated (`preview down`
    /// orders the deletion by it without the config).
    pub const DEPENDS_ON: &str = "chrono:depends-on";
    /// `account` on account-wide stacks (the shared bootstrap): never part of a preview.
    pub const SCOPE: &str = "chrono:scope";
}

/// Stack outputs read outside the stacks crate (by the deploy engine, `onboard`, the
/// tests). The stacks export them under these names.
pub mod outputs {
    /// bootstrap: the assets bucket (Lambda zips, large templates).
    pub const ASSETS_BUCKET: &str = "AssetsBucketName";
    /// bootstrap: the deploy lock table.
    pub const DEPLOY_LOCK_TABLE: &str = "DeployLockTableName";
    /// bootstrap: URI of the runtime's ECR repository.
    pub const RUNTIME_REPOSITORY_URI: &str = "RuntimeRepositoryUri";
    /// bootstrap: ARN of the runtime's ECR repository.
    pub const RUNTIME_REPOSITORY_ARN: &str = "RuntimeRepositoryArn";
    /// data: the `sources` bucket.
    pub const SOURCES_BUCKET: &str = "SourcesBucketName";
    /// data: the `artifacts` bucket.
    pub const ARTIFACTS_BUCKET: &str = "ArtifactsBucketName";
    /// compute: the pipeline state machine.
    pub const PIPELINE_STATE_MACHINE_ARN: &str = "PipelineStateMachineArn";
    /// compute: the ECS cluster.
    pub const CLUSTER_NAME: &str = "ClusterName";
    /// compute: ARN of the database migration Lambda (`chronoctl onboard` invokes it).
    pub const MIGRATE_FUNCTION_ARN: &str = "MigrateFunctionArn";
    /// api: base URL of the HTTP API.
    pub const HTTP_API_URL: &str = "HttpApiUrl";
    /// api: URL of the WebSocket API (with its stage).
    pub const WEBSOCKET_URL: &str = "WebSocketUrl";
    /// web: origin of the web app (`https://<distribution or custom domain>`).
    pub const APP_ORIGIN: &str = "AppOrigin";
    /// web: the bucket of the built app.
    pub const APP_BUCKET: &str = "AppBucketName";
    /// web: the CloudFront distribution of the app.
    pub const DISTRIBUTION_ID: &str = "DistributionId";
    /// web: the token issuer (the user pool's, or the configured one).
    pub const JWT_ISSUER: &str = "JwtIssuer";
    /// web: the audience of access tokens.
    pub const JWT_AUDIENCE: &str = "JwtAudience";
    /// web: the app's OIDC client id.
    pub const APP_CLIENT_ID: &str = "AppClientId";
}

/// The Cognito user-pool groups the web stack creates and the token trigger turns into
/// the roles and cases claims.
pub mod groups {
    /// Members get the `admin` role.
    pub const ADMIN: &str = "admin";
    /// Members get the `analyst` role.
    pub const ANALYST: &str = "analyst";
    /// Members may see every case (cases claim `*`).
    pub const ALL_CASES: &str = "all-cases";
    /// `case-<case id>`: members may see that case.
    pub const CASE_PREFIX: &str = "case-";
}

/// The `data_type` of the events the pipeline writes, per family of sources. Filters,
/// the AI translator and the model's prompt name the same values.
pub mod data_type {
    /// A Windows event log record (EVTX).
    pub const WINDOWS_EVTX: &str = "windows:evtx:record";
    /// A syslog line (RFC 3164/5424, auth.log).
    pub const SYSLOG: &str = "syslog:line";
    /// A CloudTrail record.
    pub const CLOUDTRAIL: &str = "aws:cloudtrail:event";
}

/// Default JWT claims carrying the caller's roles and cases (the config may name others).
pub mod claims {
    /// Roles claim (`admin`, `analyst`).
    pub const ROLES: &str = "https://chronotracer.io/roles";
    /// Cases claim (case ids, or `*`).
    pub const CASES: &str = "https://chronotracer.io/cases";
}

/// The runtime's binaries: Lambda zip names, container entry points, Cargo `[[bin]]`s.
pub mod binaries {
    /// The HTTP API.
    pub const API: &str = "chrono-api";
    /// The AI chat Lambda.
    pub const AI_CHAT: &str = "chrono-ai-chat";
    /// The WebSocket API's `$connect` authorizer.
    pub const WS_AUTHORIZER: &str = "chrono-ws-authorizer";
    /// The pipeline task's entry point.
    pub const PIPELINE: &str = "chrono-pipeline";
    /// The filter-ai service.
    pub const FILTER_AI: &str = "chrono-filter-ai";
    /// The Cognito pre-token-generation trigger.
    pub const TOKEN_CLAIMS: &str = "chrono-token-claims";
}

/// What the pipeline and its state machine leave for each other in the `artifacts`
/// bucket, under `evidence/<evidence id>/`, and how a step's exit code reads.
pub mod pipeline {
    /// Prefix of one evidence's objects; followed by the evidence id and `/`.
    pub const EVIDENCE_PREFIX: &str = "evidence/";
    /// The parts manifest `split` writes last: a JSON array of the parts' artifact keys,
    /// what the state machine's Distributed Map reads item by item (`ItemReader`).
    pub const PARTS_MANIFEST: &str = "parts.json";
    /// Prefix under which the Distributed Map writes its child executions' results.
    pub const MAP_RESULTS: &str = "map-results";
    /// A failing step's own message, read by `fail`.
    pub const STEP_ERROR: &str = "step-error.json";
    /// The `chrono_command` with which the state machine's failure path invokes the API
    /// function to mark an evidence failed.
    pub const FAIL_COMMAND: &str = "fail_evidence";
    /// Exit code of a temporary failure (`EX_TEMPFAIL`): retried.
    pub const EXIT_RETRYABLE: u8 = 75;
    /// Exit code of bad input (`EX_DATAERR`): never retried.
    pub const EXIT_BAD_INPUT: u8 = 65;
    /// Exit code of missing configuration (`EX_CONFIG`).
    pub const EXIT_CONFIG: u8 = 78;
}

/// CloudFormation limits the synthesizer checks and the deploy engine obeys.
pub mod limits {
    /// Largest template body accepted inline (`TemplateBody`); larger ones are passed as a
    /// `TemplateURL` from the assets bucket.
    /// <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html>
    pub const MAX_INLINE_TEMPLATE_BYTES: usize = 51_200;
}

#[cfg(test)]
mod tests {
    use super::env;

    #[test]
    fn variable_lists_are_sorted_and_unique() {
        for list in [&env::RUNTIME[..], &env::AUTHORIZER[..]] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
            assert!(list.iter().all(|v| v.starts_with("CHRONO_")), "{list:?}");
        }
    }
}
