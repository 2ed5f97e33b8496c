//! `status --drift` (CloudFormation drift detection) from the real SDK client against a
//! loopback HTTP server speaking CloudFormation's query protocol (form-encoded requests,
//! XML answers): moto 5.2.5 has no DetectStackDrift. The server follows the API reference
//! (<https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DetectStackDrift.html>,
//! `API_DescribeStackDriftDetectionStatus.html`, `API_DescribeStackResourceDrifts.html`):
//! a detection is in progress for one poll, then complete (or failed for some resources,
//! with a reason); resource drifts come in two pages.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono_provisioner::aws::Clients;
use chrono_provisioner::deploy::cfn::Timing;
use chrono_provisioner::deploy::drift::render_drift;
use chrono_provisioner::deploy::progress::Silent;
use chrono_provisioner::deploy::{DeployOptions, DeployPlan, Engine, PlannedStack};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "http://cloudformation.amazonaws.com/doc/2010-05-15/";

fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn form(body: &str) -> BTreeMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

fn ok(action: &str, result: &str) -> (u16, String) {
    (
        200,
        format!(
            "<{action}Response xmlns=\"{NS}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>r-1</RequestId></ResponseMetadata></{action}Response>"
        ),
    )
}

/// The server's answer to one request.
fn answer(p: &BTreeMap<String, String>, polls: &mut BTreeMap<String, usize>) -> (u16, String) {
    let action = p.get("Action").map(String::as_str).unwrap_or_default();
    let stack = p.get("StackName").cloned().unwrap_or_default();
    let t = "2026-12-01T10:00:00.000Z";
    match action {
        "DescribeStacks" if stack.ends_with("-api") => (
            400,
            format!(
                "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id {stack} does not exist</Message></Error><RequestId>r-2</RequestId></ErrorResponse>"
            ),
        ),
        "DescribeStacks" => ok(
            action,
            &format!(
                "<Stacks><member><StackName>{stack}</StackName><StackId>arn:aws:cloudformation:eu-west-1:111122223333:stack/{stack}/1</StackId><CreationTime>{t}</CreationTime><StackStatus>UPDATE_COMPLETE</StackStatus></member></Stacks>"
            ),
        ),
        "DetectStackDrift" => ok(
            action,
            &format!("<StackDriftDetectionId>det-{stack}</StackDriftDetectionId>"),
        ),
        "DescribeStackDriftDetectionStatus" => {
            let id = p["StackDriftDetectionId"].clone();
            let n = polls.entry(id.clone()).or_default();
            *n += 1;
            let stack = id.trim_start_matches("det-");
            let body = if *n == 1 {
                "<DetectionStatus>DETECTION_IN_PROGRESS</DetectionStatus>".to_owned()
            } else if stack.ends_with("-network") {
                "<DetectionStatus>DETECTION_COMPLETE</DetectionStatus><StackDriftStatus>DRIFTED</StackDriftStatus><DriftedStackResourceCount>2</DriftedStackResourceCount>".to_owned()
            } else {
                "<DetectionStatus>DETECTION_FAILED</DetectionStatus><DetectionStatusReason>Failed to detect drift on resource [Queue]: not supported</DetectionStatusReason><StackDriftStatus>IN_SYNC</StackDriftStatus><DriftedStackResourceCount>0</DriftedStackResourceCount>".to_owned()
            };
            ok(
                action,
                &format!(
                    "<StackId>arn:aws:cloudformation:eu-west-1:111122223333:stack/{stack}/1</StackId><StackDriftDetectionId>{id}</StackDriftDetectionId>{body}<Timestamp>{t}</Timestamp>"
                ),
            )
        }
        "DescribeStackResourceDrifts" if stack.ends_with("-network") => {
            let sid = format!("arn:aws:cloudformation:eu-west-1:111122223333:stack/{stack}/1");
            if p.get("NextToken").map(String::as_str) == Some("page-2") {
                ok(
                    action,
                    &format!(
                        "<StackResourceDrifts><member><StackId>{sid}</StackId><LogicalResourceId>FlowLogs</LogicalResourceId><PhysicalResourceId>fl-1</PhysicalResourceId><ResourceType>AWS::EC2::FlowLog</ResourceType><StackResourceDriftStatus>DELETED</StackResourceDriftStatus><Timestamp>{t}</Timestamp></member></StackResourceDrifts>"
                    ),
                )
            } else {
                ok(
                    action,
                    &format!(
                        "<StackResourceDrifts><member><StackId>{sid}</StackId><LogicalResourceId>AlbSecurityGroup</LogicalResourceId><PhysicalResourceId>sg-1</PhysicalResourceId><ResourceType>AWS::EC2::SecurityGroup</ResourceType><StackResourceDriftStatus>MODIFIED</StackResourceDriftStatus><PropertyDifferences><member><PropertyPath>/SecurityGroupIngress/1</PropertyPath><ExpectedValue>null</ExpectedValue><ActualValue>{{\"CidrIp\":\"0.0.0.0/0\",\"FromPort\":22}}</ActualValue><DifferenceType>ADD</DifferenceType></member></PropertyDifferences><Timestamp>{t}</Timestamp></member></StackResourceDrifts><NextToken>page-2</NextToken>"
                    ),
                )
            }
        }
        "DescribeStackResourceDrifts" => ok(action, "<StackResourceDrifts/>"),
        other => (
            400,
            format!(
                "<ErrorResponse xmlns=\"{NS}\"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>unexpected {other}</Message></Error><RequestId>r-3</RequestId></ErrorResponse>"
            ),
        ),
    }
}

type Seen = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// A loopback CloudFormation (query protocol): reads whole requests, answers by action.
async fn serve(seen: Seen) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let polls = Arc::new(Mutex::new(BTreeMap::new()));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let (seen, polls) = (seen.clone(), polls.clone());
            tokio::spawn(async move {
                loop {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, len) = loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let p = form(&String::from_utf8_lossy(&buf[head_end..head_end + len]));
                    let (status, body) = answer(&p, &mut polls.lock().unwrap());
                    seen.lock().unwrap().push(p);
                    let reason = if status == 200 { "OK" } else { "Bad Request" };
                    let resp = format!(
                        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/xml\r\nx-amzn-RequestId: r-1\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn drift_detection_reports_modified_and_deleted_resources_of_every_deployed_stack() {
    let seen: Seen = Arc::default();
    let port = serve(seen.clone()).await;
    let sdk = aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("eu-west-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKID", "secret", None, None, "test"),
            ),
        )
        .build();
    let opts = DeployOptions {
        timing: Timing {
            poll: Duration::from_millis(1),
            ..Timing::default()
        },
        ..DeployOptions::default()
    };
    let e = Engine::new(Clients::from_sdk_config(&sdk), opts, Arc::new(Silent));
    let plan = DeployPlan::new("acme", "prod")
        .with_stack(PlannedStack::new("network", "{}"))
        .with_stack(PlannedStack::new("data", "{}").depends_on("network"))
        .with_stack(PlannedStack::new("api", "{}").depends_on("data"));

    let drifts = e.detect_drift(&plan).await.unwrap();
    let by = |n: &str| drifts.iter().find(|d| d.name == n).unwrap();

    let net = by("network");
    assert_eq!(net.status, "DRIFTED");
    assert!(net.drifted());
    assert_eq!(net.reason, None);
    assert_eq!(net.resources.len(), 2, "both pages: {net:?}");
    let sg = &net.resources[0];
    assert_eq!(
        (
            sg.logical_id.as_str(),
            sg.status.as_str(),
            sg.physical_id.as_str()
        ),
        ("AlbSecurityGroup", "MODIFIED", "sg-1")
    );
    assert_eq!(sg.properties.len(), 1);
    assert_eq!(sg.properties[0].path, "/SecurityGroupIngress/1");
    assert_eq!(sg.properties[0].difference, "ADD");
    assert!(sg.properties[0].actual.contains("0.0.0.0/0"));
    assert_eq!(net.resources[1].status, "DELETED");
    assert_eq!(net.resources[1].logical_id, "FlowLogs");

    let data = by("data");
    assert_eq!(data.status, "IN_SYNC");
    assert!(!data.drifted());
    assert!(
        data.reason.as_deref().unwrap().contains("not supported"),
        "{data:?}"
    );
    assert!(data.resources.is_empty());

    assert_eq!(by("api").status, "NOT_DEPLOYED");

    // the calls: detection, polling until done, only modified/deleted drifts asked for;
    // nothing for a stack that is not deployed
    let seen = seen.lock().unwrap();
    let actions: Vec<(String, String)> = seen
        .iter()
        .map(|p| {
            (
                p["Action"].clone(),
                p.get("StackName")
                    .or(p.get("StackDriftDetectionId"))
                    .cloned()
                    .unwrap_or_default(),
            )
        })
        .collect();
    let net_calls: Vec<&str> = actions
        .iter()
        .filter(|(_, s)| s.ends_with("-network"))
        .map(|(a, _)| a.as_str())
        .collect();
    assert_eq!(
        net_calls,
        [
            "DescribeStacks",
            "DetectStackDrift",
            "DescribeStackDriftDetectionStatus",
            "DescribeStackDriftDetectionStatus",
            "DescribeStackResourceDrifts",
            "DescribeStackResourceDrifts",
        ]
    );
    assert!(
        !actions
            .iter()
            .any(|(a, s)| s.ends_with("-api") && a != "DescribeStacks"),
        "{actions:?}"
    );
    let filters = seen
        .iter()
        .find(|p| p["Action"] == "DescribeStackResourceDrifts")
        .unwrap();
    assert_eq!(
        filters
            .get("StackResourceDriftStatusFilters.member.1")
            .map(String::as_str),
        Some("MODIFIED")
    );
    assert_eq!(
        filters
            .get("StackResourceDriftStatusFilters.member.2")
            .map(String::as_str),
        Some("DELETED")
    );

    let text = render_drift(&drifts);
    assert!(text.contains("network    DRIFTED"), "{text}");
    assert!(
        text.contains("ADD /SecurityGroupIngress/1: expected null actual"),
        "{text}"
    );
    assert!(
        text.contains("incomplete: Failed to detect drift"),
        "{text}"
    );
}
