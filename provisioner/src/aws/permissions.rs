//! Every SDK operation chronoctl makes in a customer account (`deploy`, `diff`, `status
//! --drift`, `onboard`, `destroy`, hot swaps, the web app's publish), with the IAM requests
//! it needs there: the list the `deploy-access` template's `ChronoDeployRole` is checked
//! against (tests/tests/deploy_access_iam.rs: every call below is allowed by the role, and
//! every `<client>.<operation>()` of this crate outside `local/` and `preview/` is listed
//! here, so a new call cannot be forgotten).
//!
//! Not listed: `sts:AssumeRole` (made with the operator's own credentials, the other side
//! of the trust), the local emulator's calls (`local/`) and previews (`preview/`: developer
//! credentials in a development account). Docker's registry calls of an image push are not
//! SDK calls; the role allows them on the runtime repository.
//!
//! Resources are written with `{prefix}` (`chrono-<customer>-<stage>`), `{account}` and
//! `{region}`; actions and resource types follow the Service Authorization Reference
//! (<https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html>).

/// One IAM request an operation makes: action, resource ARN, condition keys.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    /// `service:Action`.
    pub action: &'static str,
    /// Resource ARN pattern (`{prefix}`, `{account}`, `{region}`).
    pub resource: &'static str,
    /// Condition keys of the request.
    pub context: &'static [(&'static str, &'static str)],
}

/// One SDK operation: the `Clients` field and the fluent method, and what it asks IAM.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Field of [`crate::aws::Clients`] (`cfn`, `s3`, ...).
    pub client: &'static str,
    /// The SDK method (`create_change_set`).
    pub operation: &'static str,
    /// The IAM requests it makes.
    pub requests: &'static [Request],
}

const fn req(action: &'static str, resource: &'static str) -> Request {
    Request {
        action,
        resource,
        context: &[],
    }
}

const STACK: &str = "arn:aws:cloudformation:{region}:{account}:stack/{prefix}-api/0a1b2c3d";
const EXECUTION_ROLE: &str = "arn:aws:iam::{account}:role/{prefix}-cfn-execution";
const PASS_EXECUTION: Request = Request {
    action: "iam:PassRole",
    resource: EXECUTION_ROLE,
    context: &[("iam:PassedToService", "cloudformation.amazonaws.com")],
};
const LOCK: &str = "arn:aws:dynamodb:{region}:{account}:table/{prefix}-deploy-lock";
const ASSET: &str = "arn:aws:s3:::{prefix}-assets-{account}/lambda/api-0a1b.zip";
const APP_OBJECT: &str = "arn:aws:s3:::{prefix}-app-{account}/index.html";
const RETAINED_BUCKET: &str = "arn:aws:s3:::{prefix}-sources-{account}";
const RETAINED_OBJECT: &str = "arn:aws:s3:::{prefix}-sources-{account}/case-1/evidence.evtx";
const REPOSITORY: &str = "arn:aws:ecr:{region}:{account}:repository/{prefix}-runtime";
const FUNCTION: &str = "arn:aws:lambda:{region}:{account}:function:{prefix}-api";
const SERVICE: &str = "arn:aws:ecs:{region}:{account}:service/{prefix}/{prefix}-filter-ai";
const STATE_MACHINE: &str = "arn:aws:states:{region}:{account}:stateMachine:{prefix}-pipeline";

macro_rules! stack_call {
    ($op:literal, $action:literal) => {
        Call {
            client: "cfn",
            operation: $op,
            requests: &[req($action, STACK)],
        }
    };
}

/// The calls.
pub const CALLS: &[Call] = &[
    Call {
        client: "cfn",
        operation: "create_change_set",
        requests: &[req("cloudformation:CreateChangeSet", STACK), PASS_EXECUTION],
    },
    Call {
        client: "cfn",
        operation: "delete_stack",
        requests: &[req("cloudformation:DeleteStack", STACK), PASS_EXECUTION],
    },
    stack_call!(
        "continue_update_rollback",
        "cloudformation:ContinueUpdateRollback"
    ),
    stack_call!("delete_change_set", "cloudformation:DeleteChangeSet"),
    stack_call!("describe_change_set", "cloudformation:DescribeChangeSet"),
    stack_call!(
        "describe_stack_events",
        "cloudformation:DescribeStackEvents"
    ),
    stack_call!("describe_stacks", "cloudformation:DescribeStacks"),
    stack_call!("execute_change_set", "cloudformation:ExecuteChangeSet"),
    stack_call!("get_template", "cloudformation:GetTemplate"),
    stack_call!("list_change_sets", "cloudformation:ListChangeSets"),
    stack_call!("list_stack_resources", "cloudformation:ListStackResources"),
    stack_call!(
        "update_termination_protection",
        "cloudformation:UpdateTerminationProtection"
    ),
    stack_call!("detect_stack_drift", "cloudformation:DetectStackDrift"),
    stack_call!(
        "describe_stack_resource_drifts",
        "cloudformation:DescribeStackResourceDrifts"
    ),
    Call {
        client: "cfn",
        operation: "describe_stack_drift_detection_status",
        requests: &[req("cloudformation:DescribeStackDriftDetectionStatus", "*")],
    },
    Call {
        client: "cloudfront",
        operation: "create_invalidation",
        requests: &[req(
            "cloudfront:CreateInvalidation",
            "arn:aws:cloudfront::{account}:distribution/E2QWRUHEXAMPLE",
        )],
    },
    Call {
        client: "ddb",
        operation: "get_item",
        requests: &[req("dynamodb:GetItem", LOCK)],
    },
    Call {
        client: "ddb",
        operation: "put_item",
        requests: &[req("dynamodb:PutItem", LOCK)],
    },
    Call {
        client: "ddb",
        operation: "update_item",
        requests: &[req("dynamodb:UpdateItem", LOCK)],
    },
    Call {
        client: "ddb",
        operation: "delete_item",
        requests: &[req("dynamodb:DeleteItem", LOCK)],
    },
    Call {
        client: "ddb",
        operation: "delete_table",
        requests: &[req(
            "dynamodb:DeleteTable",
            "arn:aws:dynamodb:{region}:{account}:table/{prefix}-conversations",
        )],
    },
    Call {
        client: "ecr",
        operation: "get_authorization_token",
        requests: &[req("ecr:GetAuthorizationToken", "*")],
    },
    Call {
        client: "ecr",
        operation: "describe_images",
        requests: &[req("ecr:DescribeImages", REPOSITORY)],
    },
    Call {
        client: "ecr",
        operation: "describe_repositories",
        requests: &[req("ecr:DescribeRepositories", REPOSITORY)],
    },
    Call {
        client: "ecs",
        operation: "describe_task_definition",
        requests: &[req("ecs:DescribeTaskDefinition", "*")],
    },
    Call {
        client: "ecs",
        operation: "register_task_definition",
        requests: &[
            req("ecs:RegisterTaskDefinition", "*"),
            Request {
                action: "iam:PassRole",
                resource: "arn:aws:iam::{account}:role/{prefix}-compute-FilterAiTaskRole-0A1B",
                context: &[("iam:PassedToService", "ecs-tasks.amazonaws.com")],
            },
        ],
    },
    Call {
        client: "ecs",
        operation: "deregister_task_definition",
        requests: &[req("ecs:DeregisterTaskDefinition", "*")],
    },
    Call {
        client: "ecs",
        operation: "describe_services",
        requests: &[req("ecs:DescribeServices", SERVICE)],
    },
    Call {
        client: "ecs",
        operation: "update_service",
        requests: &[req("ecs:UpdateService", SERVICE)],
    },
    Call {
        client: "iam",
        operation: "create_service_linked_role",
        requests: &[Request {
            action: "iam:CreateServiceLinkedRole",
            resource: "arn:aws:iam::{account}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS",
            context: &[("iam:AWSServiceName", "ecs.amazonaws.com")],
        }],
    },
    Call {
        client: "lambda",
        operation: "get_function",
        requests: &[req("lambda:GetFunction", FUNCTION)],
    },
    Call {
        client: "lambda",
        operation: "update_function_code",
        requests: &[req("lambda:UpdateFunctionCode", FUNCTION)],
    },
    Call {
        client: "lambda",
        operation: "invoke",
        requests: &[req(
            "lambda:InvokeFunction",
            "arn:aws:lambda:{region}:{account}:function:{prefix}-migrate",
        )],
    },
    Call {
        client: "s3",
        operation: "head_object",
        requests: &[req("s3:GetObject", ASSET)],
    },
    Call {
        client: "s3",
        operation: "put_object",
        requests: &[req("s3:PutObject", ASSET), req("s3:PutObject", APP_OBJECT)],
    },
    Call {
        client: "s3",
        operation: "get_object",
        requests: &[req("s3:GetObject", APP_OBJECT)],
    },
    Call {
        client: "s3",
        operation: "list_object_versions",
        requests: &[req("s3:ListBucketVersions", RETAINED_BUCKET)],
    },
    Call {
        client: "s3",
        operation: "delete_objects",
        requests: &[
            req("s3:DeleteObject", RETAINED_OBJECT),
            req("s3:DeleteObjectVersion", RETAINED_OBJECT),
        ],
    },
    Call {
        client: "s3",
        operation: "delete_bucket",
        requests: &[req("s3:DeleteBucket", RETAINED_BUCKET)],
    },
    Call {
        client: "sfn",
        operation: "describe_state_machine",
        requests: &[req("states:DescribeStateMachine", STATE_MACHINE)],
    },
    Call {
        client: "sfn",
        operation: "update_state_machine",
        requests: &[req("states:UpdateStateMachine", STATE_MACHINE)],
    },
    Call {
        client: "sts",
        operation: "get_caller_identity",
        requests: &[req("sts:GetCallerIdentity", "*")],
    },
];
