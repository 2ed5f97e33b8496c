//! The engine's decisions as pure functions: from what CloudFormation says about a stack
//! and the run's options to the next step. No I/O here: the engine ([`super::engine`])
//! carries the steps out, and the tables below are tested over every `StackStatus`.
//!
//! Stack statuses and what may follow them:
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/view-stack-events.html#cfn-console-view-stack-data-resources-status-codes>;
//! `CREATE_FAILED`/`UPDATE_FAILED` only exist when rollback was disabled, and are left with
//! `RollbackStack` (<https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_RollbackStack.html>).

use std::collections::BTreeMap;

use aws_sdk_cloudformation::types::StackStatus;

/// The options that change a decision (`--dry-run` does not: it only stops the engine from
/// carrying the step out).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecideOptions {
    /// `--yes`: a stack left by a failed create may be deleted and created again.
    pub yes: bool,
    /// Wait for an operation someone else started (else refuse).
    pub wait: bool,
}

/// Why a stack is not touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A failed create (`ROLLBACK_COMPLETE`, `ROLLBACK_FAILED`) without `--yes`.
    NeedsDelete,
    /// `UPDATE_ROLLBACK_FAILED`: `chronoctl recover` first.
    UpdateRollbackFailed,
    /// Someone else's operation is running and we may not wait.
    Busy,
    /// `DELETE_FAILED`: a delete must be finished by hand first.
    DeleteFailed,
    /// `CREATE_FAILED`/`UPDATE_FAILED` (rollback disabled by whoever ran it): `RollbackStack`.
    RollbackDisabled,
    /// `IMPORT_ROLLBACK_FAILED`: a resource import could not be undone.
    ImportRollbackFailed,
    /// A status this version of chronoctl does not know.
    UnknownStatus,
}

/// What to do with a stack before comparing it with the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// It does not exist: create it through a `CREATE` change set.
    Create,
    /// It is settled: compare it, and update it through an `UPDATE` change set if needed.
    Update,
    /// `REVIEW_IN_PROGRESS` (a create whose change set was never executed, e.g. a killed
    /// run): it holds no resources; delete it and create it again.
    StartOver,
    /// A failed create with `--yes`: delete it, then create it again.
    DeleteThenCreate,
    /// Someone else's operation runs: wait for it to settle, then decide again.
    Wait,
    /// Leave it alone and fail the stack.
    Refuse(Refusal),
}

/// The next step for a stack in `status` (`None`: it does not exist).
pub fn next_step(status: Option<&StackStatus>, o: DecideOptions) -> Next {
    use StackStatus as S;
    let Some(status) = status else {
        return Next::Create;
    };
    match status {
        S::CreateComplete
        | S::UpdateComplete
        | S::UpdateRollbackComplete
        | S::ImportComplete
        | S::ImportRollbackComplete => Next::Update,
        S::DeleteComplete => Next::Create,
        S::ReviewInProgress => Next::StartOver,
        S::RollbackComplete | S::RollbackFailed if o.yes => Next::DeleteThenCreate,
        S::RollbackComplete | S::RollbackFailed => Next::Refuse(Refusal::NeedsDelete),
        S::UpdateRollbackFailed => Next::Refuse(Refusal::UpdateRollbackFailed),
        S::DeleteFailed => Next::Refuse(Refusal::DeleteFailed),
        S::CreateFailed | S::UpdateFailed => Next::Refuse(Refusal::RollbackDisabled),
        S::ImportRollbackFailed => Next::Refuse(Refusal::ImportRollbackFailed),
        S::CreateInProgress
        | S::DeleteInProgress
        | S::ImportInProgress
        | S::ImportRollbackInProgress
        | S::RollbackInProgress
        | S::UpdateCompleteCleanupInProgress
        | S::UpdateInProgress
        | S::UpdateRollbackCompleteCleanupInProgress
        | S::UpdateRollbackInProgress => {
            if o.wait {
                Next::Wait
            } else {
                Next::Refuse(Refusal::Busy)
            }
        }
        _ => Next::Refuse(Refusal::UnknownStatus),
    }
}

/// The SDK's status of a status string (unknown strings become `Unknown`, which
/// [`next_step`] refuses).
pub fn status(s: &str) -> StackStatus {
    StackStatus::from(s)
}

/// Whether a stack in this status is settled after a successful operation (or a clean
/// rollback) and may be compared and updated: [`next_step`] says `Update`.
pub fn is_settled(status: &StackStatus) -> bool {
    next_step(Some(status), DecideOptions::default()) == Next::Update
}

/// Whether CloudFormation is still working on a stack in this status (an operation runs
/// and will end by itself). `REVIEW_IN_PROGRESS` is not: it waits for someone to execute
/// a change set.
pub fn is_busy(status: &StackStatus) -> bool {
    status.as_str().ends_with("_IN_PROGRESS") && *status != StackStatus::ReviewInProgress
}

/// How an operation chronoctl started ended, from the stack's final status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It did what it should.
    Succeeded,
    /// It failed (and rolled back, or did not).
    Failed,
}

/// The end of a create or update we executed.
pub fn ended(status: &StackStatus) -> Ended {
    match status {
        StackStatus::CreateComplete | StackStatus::UpdateComplete => Ended::Succeeded,
        _ => Ended::Failed,
    }
}

/// A stack as deployed, as far as deciding whether to skip it goes.
#[derive(Debug, Clone, Copy)]
pub struct Deployed<'a> {
    /// Its status.
    pub status: &'a StackStatus,
    /// The template body it was deployed from (`GetTemplate`, stage `Original`).
    pub body: Option<&'a str>,
    /// Its parameter values.
    pub parameters: &'a BTreeMap<String, String>,
    /// Its stack tags.
    pub tags: &'a BTreeMap<String, String>,
}

/// What the run would deploy.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// Template body.
    pub body: &'a str,
    /// Parameter values.
    pub parameters: &'a BTreeMap<String, String>,
    /// Stack tags.
    pub tags: &'a BTreeMap<String, String>,
}

/// Tags compared to decide a skip. The template-hash tag is not: the body is compared
/// itself (and the local emulator keeps a stack's first tags across updates).
fn comparable_tags<'a>(
    tags: &'a BTreeMap<String, String>,
    ignore: &'a str,
) -> impl Iterator<Item = (&'a String, &'a String)> {
    tags.iter().filter(move |(k, _)| k.as_str() != ignore)
}

/// Whether a stack may be skipped: settled after a successful operation, and the deployed
/// template body, parameters and tags are exactly what would be deployed. A matching hash
/// tag alone is never enough (the body may have been changed by someone else).
pub fn is_unchanged(deployed: &Deployed<'_>, wanted: &Wanted<'_>, hash_tag: &str) -> bool {
    matches!(
        deployed.status,
        StackStatus::CreateComplete | StackStatus::UpdateComplete
    ) && deployed.body == Some(wanted.body)
        && deployed.parameters == wanted.parameters
        && comparable_tags(deployed.tags, hash_tag).eq(comparable_tags(wanted.tags, hash_tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YES: DecideOptions = DecideOptions {
        yes: true,
        wait: true,
    };
    const NO: DecideOptions = DecideOptions {
        yes: false,
        wait: false,
    };

    /// (status, next with --yes and waiting, next without either)
    fn table() -> Vec<(&'static str, Next, Next)> {
        use Next::*;
        use Refusal::*;
        vec![
            ("CREATE_COMPLETE", Update, Update),
            (
                "CREATE_FAILED",
                Refuse(RollbackDisabled),
                Refuse(RollbackDisabled),
            ),
            ("CREATE_IN_PROGRESS", Wait, Refuse(Busy)),
            ("DELETE_COMPLETE", Create, Create),
            ("DELETE_FAILED", Refuse(DeleteFailed), Refuse(DeleteFailed)),
            ("DELETE_IN_PROGRESS", Wait, Refuse(Busy)),
            ("IMPORT_COMPLETE", Update, Update),
            ("IMPORT_IN_PROGRESS", Wait, Refuse(Busy)),
            ("IMPORT_ROLLBACK_COMPLETE", Update, Update),
            (
                "IMPORT_ROLLBACK_FAILED",
                Refuse(ImportRollbackFailed),
                Refuse(ImportRollbackFailed),
            ),
            ("IMPORT_ROLLBACK_IN_PROGRESS", Wait, Refuse(Busy)),
            ("REVIEW_IN_PROGRESS", StartOver, StartOver),
            ("ROLLBACK_COMPLETE", DeleteThenCreate, Refuse(NeedsDelete)),
            ("ROLLBACK_FAILED", DeleteThenCreate, Refuse(NeedsDelete)),
            ("ROLLBACK_IN_PROGRESS", Wait, Refuse(Busy)),
            ("UPDATE_COMPLETE", Update, Update),
            ("UPDATE_COMPLETE_CLEANUP_IN_PROGRESS", Wait, Refuse(Busy)),
            (
                "UPDATE_FAILED",
                Refuse(RollbackDisabled),
                Refuse(RollbackDisabled),
            ),
            ("UPDATE_IN_PROGRESS", Wait, Refuse(Busy)),
            ("UPDATE_ROLLBACK_COMPLETE", Update, Update),
            (
                "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS",
                Wait,
                Refuse(Busy),
            ),
            (
                "UPDATE_ROLLBACK_FAILED",
                Refuse(UpdateRollbackFailed),
                Refuse(UpdateRollbackFailed),
            ),
            ("UPDATE_ROLLBACK_IN_PROGRESS", Wait, Refuse(Busy)),
        ]
    }

    #[test]
    fn every_stack_status_has_a_decision() {
        let table = table();
        let listed: Vec<&str> = table.iter().map(|r| r.0).collect();
        assert_eq!(
            listed,
            StackStatus::values(),
            "the SDK knows statuses this table does not (or the other way round)"
        );
        for (status, with, without) in table {
            let s = StackStatus::from(status);
            assert_eq!(
                next_step(Some(&s), YES),
                with,
                "{status} with --yes, waiting"
            );
            assert_eq!(next_step(Some(&s), NO), without, "{status} without");
            assert_eq!(
                is_busy(&s),
                matches!(with, Next::Wait),
                "{status}: busy exactly when we would wait"
            );
        }
        assert_eq!(next_step(None, NO), Next::Create);
        assert_eq!(
            next_step(Some(&StackStatus::from("SOMETHING_NEW")), YES),
            Next::Refuse(Refusal::UnknownStatus)
        );
    }

    #[test]
    fn only_a_completed_create_or_update_succeeded() {
        for status in StackStatus::values() {
            let want = if matches!(*status, "CREATE_COMPLETE" | "UPDATE_COMPLETE") {
                Ended::Succeeded
            } else {
                Ended::Failed
            };
            assert_eq!(ended(&StackStatus::from(*status)), want, "{status}");
        }
    }

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_stack_is_skipped_only_when_body_parameters_and_tags_are_the_same() {
        let params = map(&[("VpcId", "vpc-1")]);
        let tags = map(&[("chrono:template-hash", "aaa"), ("chrono:stage", "prod")]);
        let done = StackStatus::UpdateComplete;
        let deployed = Deployed {
            status: &done,
            body: Some("{\"Resources\":{}}"),
            parameters: &params,
            tags: &tags,
        };
        let wanted = Wanted {
            body: "{\"Resources\":{}}",
            parameters: &params,
            tags: &tags,
        };
        let tag = "chrono:template-hash";
        assert!(is_unchanged(&deployed, &wanted, tag));
        // the hash tag may be stale (the emulator keeps the first one): the body decides
        let stale = map(&[("chrono:template-hash", "old"), ("chrono:stage", "prod")]);
        assert!(is_unchanged(
            &Deployed {
                tags: &stale,
                ..deployed
            },
            &wanted,
            tag
        ));
        // same hash tag, other body: deployed
        assert!(!is_unchanged(
            &Deployed {
                body: Some("{\"Resources\":{\"X\":{}}}"),
                ..deployed
            },
            &wanted,
            tag
        ));
        assert!(!is_unchanged(
            &Deployed {
                body: None,
                ..deployed
            },
            &wanted,
            tag
        ));
        let other = map(&[("VpcId", "vpc-2")]);
        assert!(!is_unchanged(
            &Deployed {
                parameters: &other,
                ..deployed
            },
            &wanted,
            tag
        ));
        let more = map(&[("chrono:template-hash", "aaa"), ("chrono:stage", "staging")]);
        assert!(!is_unchanged(
            &Deployed {
                tags: &more,
                ..deployed
            },
            &wanted,
            tag
        ));
        let rolled_back = StackStatus::UpdateRollbackComplete;
        assert!(!is_unchanged(
            &Deployed {
                status: &rolled_back,
                ..deployed
            },
            &wanted,
            tag
        ));
    }
}
