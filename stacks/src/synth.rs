//! Synthesis: every stack of one config, serialized, limit-checked, plus the manifest the
//! deploy engine reads.
//!
//! Output of one config, in `templates/<customer>-<stage>/`:
//! * `<stack>.yaml` for `bootstrap`, `network`, `web`, `data`, `compute`, `api`;
//! * `deploy-access.yaml` when the config names a `deploy_role_arn`: the roles the customer
//!   deploys once ([`crate::deploy_access`]; not in the manifest, chronoctl never deploys it);
//! * `manifest.json`: format [`MANIFEST_FORMAT`]; `stacks` in deployment order, each with
//!   `name` (CloudFormation stack name), `template` (file name), `sha256` and `bytes` of
//!   the file, `upload` (true when the body exceeds 51,200 bytes and must be passed as a
//!   `TemplateURL` from the assets bucket), `depends_on` (stacks whose outputs it reads),
//!   `parameters` (name → `{"output": "<stack>.<Output>"}` or `{"asset": ...}` for values
//!   the deploy engine uploads: `{"lambda_zip": "<binary>"}` or `"image_digest"`), `outputs`,
//!   and `tags` (stack tags).

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::model::{ModelError, needs_upload};
use crate::resources::TagMap;
use crate::stack::{ParamSource, Stack, StackKind};

/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;
/// File name of the manifest.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Synthesis errors.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// A stack could not be built or breaks a CloudFormation limit.
    #[error("stack {stack}: {source}")]
    Model {
        /// Stack name.
        stack: String,
        /// Cause.
        source: ModelError,
    },
}

/// Build the six stacks of a config, wired together, in deployment order.
pub fn build_stacks(cfg: &Config) -> Result<Vec<Stack>, SynthError> {
    let err = |kind: StackKind| {
        let stack = format!("{}-{kind}", cfg.prefix());
        move |source| SynthError::Model { stack, source }
    };
    // A preview shares the account's bootstrap; a stage has its own.
    let bootstrap = if cfg.stage == crate::Stage::Preview {
        crate::bootstrap::build_account(cfg)
    } else {
        crate::bootstrap::build(cfg)
    }
    .map_err(err(StackKind::Bootstrap))?;
    let network = crate::network::build(cfg).map_err(err(StackKind::Network))?;
    let web = crate::web::build_wired(cfg, &bootstrap.outputs).map_err(err(StackKind::Web))?;
    let data = crate::data::build_wired(cfg, &network.outputs, &web.outputs)
        .map_err(err(StackKind::Data))?;
    let compute = crate::compute::build_wired(
        cfg,
        &bootstrap.outputs,
        &network.outputs,
        &data.outputs,
        &web.outputs,
    )
    .map_err(err(StackKind::Compute))?;
    let api = crate::api::build_wired(cfg, &compute.outputs, &web.outputs)
        .map_err(err(StackKind::Api))?;
    Ok(vec![
        bootstrap.stack,
        network.stack,
        web.stack,
        data.stack,
        compute.stack,
        api.stack,
    ])
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Path relative to the templates root, e.g. `acme-prod/data.yaml`.
    pub path: String,
    /// Contents.
    pub contents: String,
}

/// The manifest of one config.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Layout version.
    pub format: u32,
    /// Customer.
    pub customer: String,
    /// Stage.
    pub stage: String,
    /// AWS account.
    pub account_id: String,
    /// Region.
    pub region: String,
    /// Stacks in deployment order.
    pub stacks: Vec<ManifestStack>,
}

/// One stack in the manifest.
#[derive(Debug, Clone, Serialize)]
pub struct ManifestStack {
    /// Which stack.
    pub stack: StackKind,
    /// CloudFormation stack name.
    pub name: String,
    /// Template file, relative to the manifest.
    pub template: String,
    /// SHA-256 of the template file.
    pub sha256: String,
    /// Size of the template file.
    pub bytes: usize,
    /// Whether the body must go through the assets bucket.
    pub upload: bool,
    /// Stacks whose outputs it reads.
    pub depends_on: Vec<StackKind>,
    /// Parameter sources.
    pub parameters: BTreeMap<String, ParamSource>,
    /// Output names.
    pub outputs: Vec<String>,
    /// Stack tags.
    pub tags: TagMap,
}

/// Directory of a config's templates under the templates root: `<customer>-<stage>`.
pub fn dir_name(cfg: &Config) -> String {
    format!("{}-{}", cfg.customer, cfg.stage)
}

/// Synthesize a config: the template files and the manifest, limit-checked.
pub fn synthesize(cfg: &Config) -> Result<Vec<File>, SynthError> {
    let dir = dir_name(cfg);
    let mut files = Vec::new();
    let mut manifest = Manifest {
        format: MANIFEST_FORMAT,
        customer: cfg.customer.clone(),
        stage: cfg.stage.to_string(),
        account_id: cfg.account_id.clone(),
        region: cfg.region.clone(),
        stacks: Vec::new(),
    };
    let stacks = build_stacks(cfg)?;
    let namespaces = crate::deploy_access::namespaces(&stacks);
    let access_err = |source| SynthError::Model {
        stack: crate::deploy_access::TEMPLATE_FILE.to_owned(),
        source,
    };
    let access = crate::deploy_access::build(cfg, &namespaces).map_err(access_err)?;
    for stack in stacks {
        let err = |source| SynthError::Model {
            stack: stack.name.clone(),
            source,
        };
        stack.template.check_limits().map_err(err)?;
        stack.template.check_key_lifetimes().map_err(err)?;
        let body = stack.template.to_yaml();
        let upload = needs_upload(&body).map_err(err)?;
        let template = format!("{}.yaml", stack.kind);
        manifest.stacks.push(ManifestStack {
            stack: stack.kind,
            name: stack.name.clone(),
            template: template.clone(),
            sha256: hex::encode(Sha256::digest(body.as_bytes())),
            bytes: body.len(),
            upload,
            depends_on: stack.depends_on(),
            parameters: stack.sources.clone(),
            outputs: stack.template.outputs().keys().cloned().collect(),
            tags: stack.tags.clone(),
        });
        files.push(File {
            path: format!("{dir}/{template}"),
            contents: body,
        });
    }
    // Serializing plain structs and strings to JSON cannot fail.
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default() + "\n";
    files.push(File {
        path: format!("{dir}/{MANIFEST_FILE}"),
        contents: json,
    });
    // After the manifest: not one of the stacks chronoctl deploys.
    if let Some(access) = access {
        access.check_limits().map_err(access_err)?;
        files.push(File {
            path: format!("{dir}/{}", crate::deploy_access::TEMPLATE_FILE),
            contents: access.to_yaml(),
        });
    }
    Ok(files)
}
