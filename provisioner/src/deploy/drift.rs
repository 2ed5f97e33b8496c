//! `chronoctl status --drift`: CloudFormation's own drift detection — what changed in
//! the account outside CloudFormation (a security group rule added by hand, a bucket
//! setting changed in the console) — per stack and resource, with the property paths and
//! the expected and actual values.
//!
//! Per deployed stack: `DetectStackDrift`, then `DescribeStackDriftDetectionStatus` until
//! the detection is no longer `DETECTION_IN_PROGRESS`, then `DescribeStackResourceDrifts`
//! (paginated) for the resources `MODIFIED` or `DELETED`
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/detect-drift-stack.html>,
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DetectStackDrift.html>).
//! A detection that fails for some resources (`DETECTION_FAILED`) still reports what it
//! found, with CloudFormation's reason. Read-only: detection changes nothing in the stack.

use std::time::Instant;

use aws_sdk_cloudformation::types::{StackDriftDetectionStatus, StackResourceDriftStatus};

use crate::deploy::cfn;
use crate::deploy::engine::Engine;
use crate::deploy::error::DeployError;
use crate::deploy::plan::DeployPlan;

/// One property that differs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PropertyDrift {
    /// JSON path of the property (`/SecurityGroupIngress/1`).
    pub path: String,
    /// `ADD`, `REMOVE`, `NOT_EQUAL`.
    pub difference: String,
    /// Value in the template.
    pub expected: String,
    /// Value in the account.
    pub actual: String,
}

/// A resource that drifted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResourceDrift {
    /// Logical id.
    pub logical_id: String,
    /// Resource type.
    pub resource_type: String,
    /// Physical id.
    pub physical_id: String,
    /// `MODIFIED` or `DELETED`.
    pub status: String,
    /// What differs (empty for a deleted resource).
    pub properties: Vec<PropertyDrift>,
}

/// Drift of one stack.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackDrift {
    /// Short name.
    pub name: String,
    /// CloudFormation name.
    pub stack_name: String,
    /// `IN_SYNC`, `DRIFTED`, `UNKNOWN`, `NOT_CHECKED`, or `NOT_DEPLOYED`.
    pub status: String,
    /// Why the detection is incomplete (`DETECTION_FAILED`), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Resources modified or deleted outside CloudFormation.
    pub resources: Vec<ResourceDrift>,
}

impl StackDrift {
    /// Whether the stack drifted.
    pub fn drifted(&self) -> bool {
        self.status == "DRIFTED"
    }
}

impl Engine {
    /// Runs CloudFormation drift detection on every deployed stack of the plan.
    pub async fn detect_drift(&self, plan: &DeployPlan) -> Result<Vec<StackDrift>, DeployError> {
        let mut out = Vec::new();
        for s in plan.order()? {
            let name = plan.stack_name(&s.name);
            let mut d = StackDrift {
                name: s.name.clone(),
                stack_name: name.clone(),
                status: "NOT_DEPLOYED".into(),
                reason: None,
                resources: Vec::new(),
            };
            if cfn::describe(&self.clients.cfn, &name).await?.is_none() {
                out.push(d);
                continue;
            }
            let cfn_client = &self.clients.cfn;
            let id = cfn_client
                .detect_stack_drift()
                .stack_name(&name)
                .send()
                .await
                .map_err(|e| cfn::cfn_err(cfn_client, &name, "DetectStackDrift", &e))?
                .stack_drift_detection_id()
                .unwrap_or_default()
                .to_owned();
            let start = Instant::now();
            let status = loop {
                let st = cfn_client
                    .describe_stack_drift_detection_status()
                    .stack_drift_detection_id(&id)
                    .send()
                    .await
                    .map_err(|e| {
                        cfn::cfn_err(cfn_client, &name, "DescribeStackDriftDetectionStatus", &e)
                    })?;
                if st.detection_status() != Some(&StackDriftDetectionStatus::DetectionInProgress) {
                    break st;
                }
                if start.elapsed() > self.opts.timing.in_progress_timeout {
                    return Err(DeployError::Timeout {
                        stack: name.clone(),
                        status: "DETECTION_IN_PROGRESS".into(),
                        timeout_s: self.opts.timing.in_progress_timeout.as_secs(),
                    });
                }
                tokio::time::sleep(self.opts.timing.poll).await;
            };
            d.status = status
                .stack_drift_status()
                .map_or("UNKNOWN", |s| s.as_str())
                .to_owned();
            if status.detection_status() == Some(&StackDriftDetectionStatus::DetectionFailed) {
                d.reason = Some(
                    status
                        .detection_status_reason()
                        .unwrap_or("detection failed without a reason")
                        .to_owned(),
                );
            }
            let mut pages = cfn_client
                .describe_stack_resource_drifts()
                .stack_name(&name)
                .stack_resource_drift_status_filters(StackResourceDriftStatus::Modified)
                .stack_resource_drift_status_filters(StackResourceDriftStatus::Deleted)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| {
                    cfn::cfn_err(cfn_client, &name, "DescribeStackResourceDrifts", &e)
                })?;
                for r in page.stack_resource_drifts() {
                    let status = r
                        .stack_resource_drift_status()
                        .map_or("", |s| s.as_str())
                        .to_owned();
                    if !matches!(status.as_str(), "MODIFIED" | "DELETED") {
                        continue;
                    }
                    d.resources.push(ResourceDrift {
                        logical_id: r.logical_resource_id().unwrap_or_default().to_owned(),
                        resource_type: r.resource_type().unwrap_or_default().to_owned(),
                        physical_id: r.physical_resource_id().unwrap_or_default().to_owned(),
                        status,
                        properties: r
                            .property_differences()
                            .iter()
                            .map(|p| PropertyDrift {
                                path: p.property_path().unwrap_or_default().to_owned(),
                                difference: p
                                    .difference_type()
                                    .map_or("", |d| d.as_str())
                                    .to_owned(),
                                expected: p.expected_value().unwrap_or_default().to_owned(),
                                actual: p.actual_value().unwrap_or_default().to_owned(),
                            })
                            .collect(),
                    });
                }
            }
            out.push(d);
        }
        Ok(out)
    }
}

/// The drift report as text.
pub fn render_drift(drifts: &[StackDrift]) -> String {
    let mut s = String::from("drift (CloudFormation drift detection):\n");
    for d in drifts {
        s.push_str(&format!(
            "{:<10} {:<13} {}",
            d.name,
            d.status,
            match d.resources.len() {
                0 => String::new(),
                n => format!("{n} resource(s) changed outside CloudFormation"),
            }
        ));
        if let Some(r) = &d.reason {
            s.push_str(&format!(" (incomplete: {r})"));
        }
        s.push('\n');
        for r in &d.resources {
            s.push_str(&format!(
                "   {:<9} {} ({}, {})\n",
                r.status, r.logical_id, r.resource_type, r.physical_id
            ));
            for p in &r.properties {
                s.push_str(&format!(
                    "             {} {}: expected {} actual {}\n",
                    p.difference, p.path, p.expected, p.actual
                ));
            }
        }
    }
    s
}
