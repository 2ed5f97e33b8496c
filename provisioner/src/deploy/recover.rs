//! `chronoctl recover`: continue a rollback stuck in UPDATE_ROLLBACK_FAILED
//! (`ContinueUpdateRollback`), optionally skipping resources that cannot be rolled back.

use crate::deploy::cfn;
use crate::deploy::engine::Engine;
use crate::deploy::error::DeployError;
use crate::deploy::plan::DeployPlan;
use crate::deploy::progress::Event;
use aws_sdk_cloudformation::types::StackStatus;

impl Engine {
    /// Continues the rollback of stack `short`, skipping `skip` (logical ids), under the
    /// deploy lock. Returns the resources that were in a failed state before.
    pub async fn recover(
        &self,
        plan: &DeployPlan,
        short: &str,
        skip: &[String],
    ) -> Result<Vec<String>, DeployError> {
        self.verify_account(plan).await?;
        let name = plan.stack_name(short);
        let info = cfn::describe(&self.clients.cfn, &name)
            .await?
            .ok_or_else(|| DeployError::NotDeployed(name.clone()))?;
        if crate::deploy::decide::status(&info.status) != StackStatus::UpdateRollbackFailed {
            return Err(DeployError::ChangeSetFailed {
                stack: name,
                reason: format!(
                    "stack is in {}, not UPDATE_ROLLBACK_FAILED; nothing to recover",
                    info.status
                ),
            });
        }
        let failed = cfn::failed_resources(&self.clients.cfn, &name).await?;
        if self.opts.dry_run {
            self.reporter.on(&Event::Info {
                message: format!(
                    "dry run: would continue the rollback of {name}, skipping [{}] (failed resources: [{}])",
                    skip.join(", "),
                    failed.join(", ")
                ),
            });
            return Ok(failed);
        }
        let boot = self.bootstrap_info(plan).await?;
        let guard = match &boot {
            Some(b) => Some(self.lock(plan, b).await?),
            None => None,
        };
        let result = async {
            let mark = cfn::latest_event(&self.clients.cfn, &name).await?;
            cfn::continue_update_rollback(&self.clients.cfn, &name, skip).await?;
            let (after, events) = cfn::wait_stable(
                &self.clients.cfn,
                &name,
                &self.opts.timing,
                self.opts.timing.stack_timeout,
                mark,
                |_, _| {},
            )
            .await?;
            let after = after.ok_or_else(|| DeployError::NotDeployed(name.clone()))?;
            if after.status != "UPDATE_ROLLBACK_COMPLETE" {
                return Err(DeployError::StackFailed {
                    stack: name.clone(),
                    status: after.status,
                    root_cause: cfn::root_cause(&events, &name).map(Box::new),
                    stack_reason: after.reason,
                });
            }
            Ok(())
        }
        .await;
        if let Some(g) = guard {
            self.release(g).await?;
        }
        result?;
        Ok(failed)
    }
}
