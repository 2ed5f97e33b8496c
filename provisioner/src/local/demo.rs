//! `chronoctl local demo`: the product end to end against the running local platform,
//! through the same public interfaces a user has — the app's one origin (the `web`
//! front door) when it runs: a demo case, evidence uploaded through presigned `PUT` URLs,
//! processing, a filtered search, and one AI question. The case stays, to be explored in
//! the app, whose URL the demo prints last.
//!
//! Each step reports `ok`, `not yet available` (the runtime piece has not landed: the
//! API answers `pipeline_unavailable`, or a server is not built) or `failed`; the demo
//! exits non-zero unless every step is `ok`, and never invents a result.

use crate::output::Verdict;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use reqwest::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::control::{http_client, mint_token};
use super::layout::Layout;
use super::{LocalError, TokenArgs, TokenRole, runtime};
use crate::output::OutputFormat;

/// The demo's evidence, in upload order (files of `--evidence`).
pub const EVIDENCE: [&str; 2] = ["security.evtx", "sigma_events.csv"];

/// The filtered search the demo runs: successful logons.
pub fn demo_filter() -> Value {
    json!({
        "where": {"all": [
            {"field": "action", "op": "eq", "value": "logon"},
            {"field": "outcome", "op": "eq", "value": "success"}
        ]},
        "sort": "ts_asc",
        "limit": 5
    })
}

/// The demo's AI question: one outside the first translator's action vocabulary, answered
/// from the event catalog (Windows Security event 4616, "The system time was changed").
pub const QUESTION: &str = "when was the system time changed?";

/// The event id a correct answer to [`QUESTION`] names.
pub const QUESTION_EVENT: &str = "4616";

/// `local demo` arguments.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Directory holding the demo evidence files.
    #[arg(long, default_value = "runtime/testdata/evidence")]
    pub evidence: PathBuf,
    /// How long to wait for the pipeline, in seconds.
    #[arg(long, default_value_t = 240)]
    pub timeout: u64,
}

/// How a step went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum StepResult {
    /// Done; what it produced.
    Ok(String),
    /// The runtime piece this step needs has not landed.
    NotYetAvailable(String),
    /// It failed.
    Failed(String),
}

/// One step of the demo.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What the step does.
    pub step: String,
    /// How it went.
    #[serde(flatten)]
    pub result: StepResult,
}

/// What the demo did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// The case it created.
    pub case_id: Option<String>,
    /// Steps in order.
    pub steps: Vec<Step>,
    /// Events of the filtered search (first page).
    pub search_hits: Option<usize>,
    /// Events the AI's filter matches.
    pub ai_hits: Option<i64>,
    /// Seconds the whole demo took.
    pub seconds: f64,
    /// Where to open the app (when the front door runs).
    pub app_url: Option<String>,
}

impl Report {
    fn push(&mut self, output: OutputFormat, step: impl Into<String>, result: StepResult) {
        let step = step.into();
        if output == OutputFormat::Text {
            let (tag, detail) = match &result {
                StepResult::Ok(d) => ("ok", d),
                StepResult::NotYetAvailable(d) => ("NOT YET AVAILABLE", d),
                StepResult::Failed(d) => ("FAILED", d),
            };
            println!("[{tag}] {step}: {detail}");
        }
        self.steps.push(Step { step, result });
    }

    /// Whether every step succeeded.
    pub fn complete(&self) -> bool {
        self.steps
            .iter()
            .all(|s| matches!(s.result, StepResult::Ok(_)))
    }
}

struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), String> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }
}

fn error_of(status: StatusCode, body: &Value) -> String {
    let code = body["error"]["code"].as_str().unwrap_or("");
    let msg = body["error"]["message"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| body.to_string());
    format!("HTTP {status} {code}: {msg}")
}

/// Runs the demo against the platform recorded in `layout`.
pub async fn run(
    layout: &Layout,
    args: &DemoArgs,
    output: OutputFormat,
) -> Result<Verdict, LocalError> {
    let report = drive(layout, args, output).await?;
    match output {
        OutputFormat::Json => println!("{:#}", serde_json::to_value(&report).unwrap_or_default()),
        OutputFormat::Text => {
            println!(
                "demo {} in {:.1}s",
                if report.complete() {
                    "complete"
                } else {
                    "INCOMPLETE"
                },
                report.seconds
            );
            if let Some(url) = &report.app_url {
                match &report.case_id {
                    Some(case) => println!("Open the app: {url} (the demo case is {case})"),
                    None => println!("Open the app: {url}"),
                }
            }
        }
    }
    Ok(if report.complete() {
        Verdict::Pass
    } else {
        Verdict::Fail
    })
}

/// The demo's steps; a step that cannot run because an earlier one did not happen is
/// left out, never faked.
pub async fn drive(
    layout: &Layout,
    args: &DemoArgs,
    output: OutputFormat,
) -> Result<Report, LocalError> {
    let started = Instant::now();
    let state = layout.load()?.ok_or(LocalError::NotRunning)?;
    let mut report = Report {
        app_url: super::control::app_url(&state),
        ..Report::default()
    };
    // Through the one origin when the front door runs, as the app calls it.
    let front_door = state
        .components
        .get(super::web::WEB)
        .map(|c| c.endpoint.clone());
    let token = mint_token(
        layout,
        &TokenArgs {
            role: TokenRole::Admin,
            cases: vec![],
            sub: "demo-admin".into(),
            ttl: 3600,
        },
    )?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .map_err(|e| LocalError::Demo(e.to_string()))?;
    let Some(api) = state.components.get(runtime::API.name) else {
        report.push(
            output,
            "API",
            StepResult::NotYetAvailable(format!(
                "{} is not built in this checkout",
                runtime::API.binary
            )),
        );
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    };
    let api = Api {
        client: client.clone(),
        base: front_door.clone().unwrap_or_else(|| api.endpoint.clone()),
        token: token.clone(),
    };

    // A case.
    let name = format!("demo {}", chrono_like_now());
    let case_id = match api
        .call(
            reqwest::Method::POST,
            "/api/v1/cases",
            Some(&json!({"name": name, "description": "created by chronoctl local demo"})),
        )
        .await
    {
        Ok((s, body)) if s.is_success() => match body["id"].as_str() {
            Some(id) => {
                report.push(
                    output,
                    "create case",
                    StepResult::Ok(format!("{name} ({id})")),
                );
                id.to_owned()
            }
            None => {
                return Ok(finish(
                    report,
                    output,
                    "create case",
                    format!("no id in {body}"),
                    started,
                ));
            }
        },
        Ok((s, body)) => {
            return Ok(finish(
                report,
                output,
                "create case",
                error_of(s, &body),
                started,
            ));
        }
        Err(e) => return Ok(finish(report, output, "create case", e, started)),
    };
    report.case_id = Some(case_id.clone());

    // Evidence: register, PUT to the presigned URL, process.
    let mut processing = Vec::new();
    for file in EVIDENCE {
        let path = args.evidence.join(file);
        match upload(&api, &client, &case_id, &path).await {
            Ok(evidence_id) => {
                report.push(
                    output,
                    format!("upload {file}"),
                    StepResult::Ok(format!("evidence {evidence_id} via presigned PUT")),
                );
                let (s, body) = api
                    .call(
                        reqwest::Method::POST,
                        &format!("/api/v1/cases/{case_id}/evidence/{evidence_id}/process"),
                        None,
                    )
                    .await
                    .map_err(LocalError::Demo)?;
                let result = if s.is_success() {
                    processing.push((file, evidence_id));
                    StepResult::Ok("pipeline started".into())
                } else if body["error"]["code"] == "pipeline_unavailable" {
                    StepResult::NotYetAvailable(error_of(s, &body))
                } else {
                    StepResult::Failed(error_of(s, &body))
                };
                report.push(output, format!("process {file}"), result);
            }
            Err(e) => report.push(output, format!("upload {file}"), StepResult::Failed(e)),
        }
    }

    // Wait for the pipeline.
    let nothing_processed = processing.is_empty();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    for (file, evidence_id) in processing {
        let result = loop {
            let (s, body) = api
                .call(
                    reqwest::Method::GET,
                    &format!("/api/v1/cases/{case_id}/evidence/{evidence_id}"),
                    None,
                )
                .await
                .map_err(LocalError::Demo)?;
            if !s.is_success() {
                break StepResult::Failed(error_of(s, &body));
            }
            match body["state"].as_str() {
                Some("done") => {
                    break StepResult::Ok(format!(
                        "{} events, {} bad records",
                        body["events_count"], body["bad_records"]
                    ));
                }
                Some("failed") => {
                    break StepResult::Failed(format!("pipeline failed: {}", body["errors"]));
                }
                _ if Instant::now() > deadline => {
                    break StepResult::Failed(format!(
                        "still {} after {}s",
                        body["state"], args.timeout
                    ));
                }
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        };
        report.push(output, format!("pipeline {file}"), result);
    }

    // A filtered search.
    let filter = demo_filter();
    let (s, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/cases/{case_id}/events/search"),
            Some(&filter),
        )
        .await
        .map_err(LocalError::Demo)?;
    if s.is_success() {
        let events = body["events"].as_array().cloned().unwrap_or_default();
        report.search_hits = Some(events.len());
        let mut lines = vec![format!("{} events (first page) for {filter}", events.len())];
        for e in events.iter().take(5) {
            lines.push(event_line(e));
        }
        let result = if events.is_empty() && nothing_processed {
            StepResult::NotYetAvailable(format!(
                "the search answered, but no evidence could be processed, so no events match {filter}"
            ))
        } else if events.is_empty() {
            StepResult::Failed(format!("no events match {filter}"))
        } else {
            StepResult::Ok(lines.join("\n"))
        };
        report.push(output, "filtered search", result);
    } else {
        report.push(
            output,
            "filtered search",
            StepResult::Failed(error_of(s, &body)),
        );
    }

    // One AI question.
    match state.components.get(runtime::FILTER_AI.name) {
        None => report.push(
            output,
            "AI question",
            StepResult::NotYetAvailable(format!(
                "{} is not built in this checkout",
                runtime::FILTER_AI.binary
            )),
        ),
        Some(ai) => {
            let ai_api = Api {
                client: http_client(),
                base: front_door.clone().unwrap_or_else(|| ai.endpoint.clone()),
                token,
            };
            let ask = json!({"case_id": case_id, "question": QUESTION});
            let result = match ai_api
                .call(reqwest::Method::POST, "/api/v1/ai/chat", Some(&ask))
                .await
            {
                Ok((s, body)) if s.is_success() => {
                    report.ai_hits = body["count"].as_i64();
                    let names_event = body["filter"].to_string().contains(QUESTION_EVENT);
                    if body["kind"] != "filter" {
                        StepResult::Failed(format!("expected a filter, got {body}"))
                    } else if !names_event || body["count"].as_i64().unwrap_or(0) < 1 {
                        StepResult::Failed(format!(
                            "expected the events of {QUESTION_EVENT} (the system time was \
                             changed), got {body}"
                        ))
                    } else {
                        // the answer's events, as the timeline shows them
                        let found = api
                            .call(
                                reqwest::Method::POST,
                                &format!("/api/v1/cases/{case_id}/events/search"),
                                Some(&json!({"time": body["filter"]["time"],
                                             "where": body["filter"]["where"], "limit": 3})),
                            )
                            .await;
                        let mut lines = vec![format!(
                            "\"{QUESTION}\" -> {} ({} events)\n    filter: {}",
                            body["summary"].as_str().unwrap_or(""),
                            body["count"],
                            body["filter"]
                        )];
                        if let Ok((s, page)) = found
                            && s.is_success()
                        {
                            for e in page["events"].as_array().into_iter().flatten() {
                                lines.push(event_line(e));
                            }
                        }
                        StepResult::Ok(lines.join("\n"))
                    }
                }
                Ok((s, body)) => StepResult::Failed(error_of(s, &body)),
                Err(e) => StepResult::Failed(e),
            };
            report.push(output, "AI question", result);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One event of a search page as a line: time, catalog title (or message), category.
fn event_line(e: &serde_json::Value) -> String {
    let what = e["title"].as_str().map(str::to_owned).unwrap_or_else(|| {
        e["message"]
            .as_str()
            .unwrap_or("")
            .chars()
            .take(80)
            .collect()
    });
    format!(
        "    {} {} [{}] {} {}",
        e["ts"].as_str().unwrap_or(""),
        what,
        e["category"].as_str().unwrap_or("-"),
        e["action"].as_str().unwrap_or(""),
        e["outcome"].as_str().unwrap_or("")
    )
}

fn finish(
    mut report: Report,
    output: OutputFormat,
    step: &str,
    why: String,
    started: Instant,
) -> Report {
    report.push(output, step, StepResult::Failed(why));
    report.seconds = started.elapsed().as_secs_f64();
    report
}

async fn upload(
    api: &Api,
    client: &reqwest::Client,
    case_id: &str,
    path: &Path,
) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // the file's SHA-256: storage verifies the upload against it (chain of custody)
    let sha256 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let (s, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/cases/{case_id}/evidence"),
            Some(&json!({"file_name": file_name, "sha256": sha256})),
        )
        .await?;
    if !s.is_success() {
        return Err(error_of(s, &body));
    }
    let id = body["evidence"]["id"]
        .as_str()
        .ok_or_else(|| format!("no evidence id in {body}"))?;
    let url = body["upload"]["url"]
        .as_str()
        .ok_or_else(|| format!("no upload URL in {body}"))?;
    // with exactly the headers the URL was signed with (content type, checksum)
    let mut put = client.put(url).body(bytes);
    if let Some(headers) = body["upload"]["headers"].as_object() {
        for (name, value) in headers {
            put = put.header(name, value.as_str().unwrap_or_default());
        }
    }
    let put = put.send().await.map_err(|e| e.to_string())?;
    if !put.status().is_success() {
        return Err(format!("PUT to the presigned URL: HTTP {}", put.status()));
    }
    Ok(id.to_owned())
}

fn chrono_like_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("@{secs}")
}
