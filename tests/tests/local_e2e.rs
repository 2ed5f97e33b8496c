//! End to end through `chronoctl local`: `up` → API (case, presigned upload) → pipeline →
//! search → AI → `down`, with real processes (the S3 server on disk, moto from `.venv`, a private PostgreSQL
//! cluster, the runtime binaries of this build). Also: the one origin (a built app — here
//! a stand-in `index.html` — `config.json`, the API, the AI chat and its WebSocket behind
//! the front door) reached with a token from the issuer's code flow; `local seed`; `up`
//! twice starts no duplicates, a killed component is restarted by `up`, data survives
//! `down` + `up`, `down --wipe` removes it, and no process is left behind.
//!
//! Needs `make venv`, PostgreSQL server binaries and a built workspace (`make test`
//! provides all three).

use std::path::Path;
use std::process::Command;

use chrono_tests::local::{Local, alive, repo};
use serde_json::Value;

/// The stand-in for a built app: `index.html` and one hashed asset.
const INDEX_HTML: &str = "<!doctype html><title>stand-in app</title><script type=module src=/assets/app-1a2b3c.js></script>";

/// A local platform serving the stand-in app.
fn local_with_app() -> Local {
    let local = Local::new("chrono-local-e2e");
    let app = local.app_dir();
    std::fs::create_dir_all(app.join("assets")).unwrap();
    std::fs::write(app.join("index.html"), INDEX_HTML).unwrap();
    std::fs::write(app.join("assets/app-1a2b3c.js"), "console.log('app')").unwrap();
    local
}

fn evtx_records(path: &Path) -> usize {
    let mut parser = evtx::EvtxParser::from_path(path).unwrap();
    parser.records_json().filter(|r| r.is_ok()).count()
}

fn csv_rows(path: &Path) -> usize {
    csv::Reader::from_path(path).unwrap().records().count()
}

fn http(method: reqwest::Method, url: &str, token: &str) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::Client::new()
            .request(method, url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

/// `(rolsuper, rolcreaterole, rolcreatedb)` of the role `url` logs in as.
fn login_role(url: &str) -> (bool, bool, bool) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_as(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut c)
        .await
        .unwrap()
    })
}

/// An object from the local S3 server, read with the SDK as the runtime reads it.
fn get_object(endpoint: &str, bucket: &str, key: &str) -> Vec<u8> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sdk = chrono_provisioner::local::moto::sdk_config(endpoint, "us-east-1");
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let out = s3.get_object().bucket(bucket).key(key).send().await;
        let out = out.unwrap_or_else(|e| {
            panic!(
                "{bucket}/{key}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
        out.body.collect().await.unwrap().into_bytes().to_vec()
    })
}

#[test]
fn local_platform_end_to_end() {
    let local = local_with_app();
    let up = local.ok(&["up"]);
    assert!(
        up.contains("curl"),
        "up prints a ready-to-paste curl:\n{up}"
    );

    let first = local.pids();
    let names: Vec<&str> = first.iter().map(|(n, _)| n.as_str()).collect();
    for required in ["api", "s3", "moto", "postgres", "issuer", "web"] {
        assert!(
            names.contains(&required),
            "{required} missing from {names:?}"
        );
    }
    for (name, pid) in &first {
        assert!(alive(*pid), "{name} (pid {pid}) is not running after up");
    }
    let status: Value = serde_json::from_str(&local.ok(&["--output", "json", "status"])).unwrap();
    assert_eq!(status["healthy"], true, "{status:#}");

    // The issuer serves the minted key's JWKS over HTTP, and the API verifies against
    // that URL (as API Gateway's JWT authorizer reads the provider's JWKS), not a file.
    let issuer_url = local.state()["components"]["issuer"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let jwks_url = format!("{issuer_url}/.well-known/jwks.json");
    let (code, served) = http(reqwest::Method::GET, &jwks_url, "");
    assert_eq!(code, 200, "{jwks_url}");
    let on_disk: Value = serde_json::from_str(
        &std::fs::read_to_string(local.root().join("keys/jwks.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(served, on_disk, "the issuer serves the minted key's JWKS");
    let (_, api_pid) = first.iter().find(|(n, _)| n == "api").cloned().unwrap();
    let api_env = std::fs::read(format!("/proc/{api_pid}/environ")).unwrap();
    let api_env = String::from_utf8_lossy(&api_env);
    assert!(
        api_env
            .split('\0')
            .any(|v| v == format!("CHRONO_JWKS_URL={jwks_url}")),
        "the API fetches its keys from the issuer: {api_env}"
    );
    assert!(!api_env.contains("CHRONO_JWKS_FILE="), "{api_env}");

    // As strict as Aurora: the runtime logs in as the master-like role, never a superuser.
    let database_url = api_env
        .split('\0')
        .find_map(|v| v.strip_prefix("DATABASE_URL="))
        .expect("the API gets DATABASE_URL")
        .to_owned();
    assert_eq!(
        login_role(&database_url),
        (false, true, true),
        "{database_url}"
    );

    // Idempotent: a second up starts nothing new.
    local.ok(&["up"]);
    assert_eq!(local.pids(), first, "up twice must not start duplicates");

    // The demo flow through the public API.
    let (code, out, err) = local.chronoctl(&["--output", "json", "demo", "--timeout", "180"]);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"));
    let steps = report["steps"].as_array().unwrap().clone();
    let step = |name: &str| -> Value {
        steps
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no step {name} in {report:#}"))
    };
    assert_eq!(step("create case")["result"], "ok", "{report:#}");
    let case_id = report["case_id"].as_str().unwrap().to_owned();
    for file in ["security.evtx", "sigma_events.csv"] {
        assert_eq!(
            step(&format!("upload {file}"))["result"],
            "ok",
            "{report:#}"
        );
    }
    let evidence = repo().join("runtime/testdata/evidence");
    let expected = [
        (
            "security.evtx",
            evtx_records(&evidence.join("security.evtx")),
        ),
        (
            "sigma_events.csv",
            csv_rows(&evidence.join("sigma_events.csv")),
        ),
    ];
    // Every piece of the runtime exists now: the demo must process the evidence, find
    // events with the filter, and get an AI-produced filter that matches them.
    for (file, n) in expected {
        assert_eq!(
            step(&format!("process {file}"))["result"],
            "ok",
            "{report:#}"
        );
        let s = step(&format!("pipeline {file}"));
        assert_eq!(s["result"], "ok", "{report:#}");
        assert!(
            s["detail"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{n} events")),
            "{file}: expected {n} events: {s}"
        );
    }
    assert_eq!(step("filtered search")["result"], "ok", "{report:#}");
    assert!(report["search_hits"].as_u64().unwrap() > 0);
    assert_eq!(code, 0, "{report:#}");
    assert!(
        names.contains(&"filter-ai"),
        "filter-ai must run: {names:?}"
    );
    let ai = step("AI question");
    // The AI turns the question into the demo's own filter; it counts what that filter
    // matches in the case, which is the search's result.
    assert_eq!(ai["result"], "ok", "{report:#}");
    let produced = ai["detail"].as_str().unwrap();
    // a question outside the first translator's vocabulary, answered from the catalog, and
    // the answer's events shown with their catalog titles
    assert!(produced.contains("\"4616\""), "{produced}");
    assert!(
        produced.contains("The system time was changed [system]"),
        "{produced}"
    );
    assert!(report["ai_hits"].as_i64().unwrap() > 0, "{report:#}");

    one_origin(&local, &case_id);

    // A crashed component is reported and restarted by up.
    let (_, api_pid) = first.iter().find(|(n, _)| n == "api").cloned().unwrap();
    Command::new("kill")
        .args(["-KILL", &api_pid.to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while alive(api_pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (code, out, _) = local.chronoctl(&["status"]);
    assert_eq!(code, 1, "status must fail while the API is down:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("api") && l.contains("stopped")),
        "{out}"
    );
    let (code, _, err) = local.chronoctl(&["up"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("api (pid"), "up reports the crash: {err}");
    let restarted = local.pids();
    let new_api = restarted.iter().find(|(n, _)| n == "api").unwrap().1;
    assert_ne!(new_api, api_pid);
    assert!(alive(new_api));
    for (name, pid) in &first {
        if name != "api" {
            assert!(
                restarted.contains(&(name.clone(), *pid)),
                "{name} was restarted needlessly"
            );
        }
    }

    // down stops everything by pid; up brings the same data back.
    local.ok(&["down"]);
    let all_pids: Vec<u32> = first.iter().map(|(_, p)| *p).chain([new_api]).collect();
    for pid in &all_pids {
        assert!(
            !alive(*pid),
            "pid {pid} survived down: {:?} {:?}",
            std::fs::read_to_string(format!("/proc/{pid}/cmdline")),
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
        );
    }
    local.ok(&["up"]);
    let token = local
        .ok(&["token", "--role", "analyst", "--case", &case_id])
        .trim()
        .to_owned();
    let api = local.state()["components"]["api"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(
        reqwest::Method::GET,
        &format!("{api}/api/v1/cases/{case_id}"),
        &token,
    );
    assert_eq!(status, 200, "the case must survive down + up: {body}");
    assert_eq!(body["id"], case_id.as_str());
    // The uploaded evidence files are still in the local S3 server's sources bucket.
    let (status, body) = http(
        reqwest::Method::GET,
        &format!("{api}/api/v1/cases/{case_id}/evidence"),
        &token,
    );
    assert_eq!(status, 200, "{body}");
    // ... and again after a kill -9 of the S3 server and of moto (issue 18).
    let state = local.state();
    for name in ["s3", "moto"] {
        let pid = state["components"][name]["pid"].as_u64().unwrap() as u32;
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    local.ok(&["up"]);
    let state = local.state();
    let bucket = state["env"]["CHRONO_SOURCES_BUCKET"].as_str().unwrap();
    let s3 = state["components"]["s3"]["endpoint"].as_str().unwrap();
    let listed = body["evidence"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{body}");
    for e in listed {
        let file = e["file_name"].as_str().unwrap();
        let key = e["source_key"].as_str().unwrap();
        let want = std::fs::read(evidence.join(file)).unwrap();
        let got = get_object(s3, bucket, key);
        assert!(got == want, "{file} must survive down + up unchanged");
    }
    let (status, _) = http(
        reqwest::Method::GET,
        &format!("{api}/api/v1/cases/{case_id}"),
        "not-a-token",
    );
    assert_eq!(status, 401, "the API verifies tokens");

    // down --wipe removes the data and leaves no process behind.
    let second: Vec<u32> = local.pids().into_iter().map(|(_, p)| p).collect();
    local.ok(&["down", "--wipe"]);
    assert!(!local.root().exists(), "--wipe removes the directory");
    for pid in second {
        assert!(!alive(pid), "pid {pid} survived down --wipe");
    }
    local.ok(&["up"]);
    let token = local.ok(&["token", "--role", "admin"]).trim().to_owned();
    let api = local.state()["components"]["api"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = http(reqwest::Method::GET, &format!("{api}/api/v1/cases"), &token);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["cases"],
        serde_json::json!([]),
        "a wiped platform starts empty"
    );
    let last: Vec<u32> = local.pids().into_iter().map(|(_, p)| p).collect();
    local.ok(&["down", "--wipe"]);
    for pid in last {
        assert!(!alive(pid), "pid {pid} survived the final down");
    }
}

/// Logs in through the issuer's authorization code flow with PKCE, as the app does (but
/// without a browser): the login page's form, the redirect with the code, the token
/// exchange. The access token.
async fn login(http: &reqwest::Client, config: &Value, role: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let oidc = &config["oidc"];
    let issuer = oidc["issuer"].as_str().unwrap();
    let discovery: Value = http
        .get(format!("{issuer}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(discovery["issuer"], issuer);
    let verifier = "a-verifier-of-more-than-forty-three-characters-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let redirect = oidc["redirect_uri"].as_str().unwrap();
    let client_id = oidc["client_id"].as_str().unwrap();
    let resp = http
        .post(discovery["authorization_endpoint"].as_str().unwrap())
        .form(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", "openid profile"),
            ("state", "s"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("user", "e2e-user"),
            ("role", role),
            ("cases", "*"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303, "{:?}", resp.text().await);
    let location = reqwest::Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect), "{location}");
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = http
        .post(discovery["token_endpoint"].as_str().unwrap())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect),
            ("client_id", client_id),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    tokens["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {tokens}"))
        .to_owned()
}

/// The app's one origin: static files with the security headers, `config.json`, the API,
/// the AI chat and its WebSocket, with a token from the code flow; `local seed` and the
/// histogram over what it loaded.
fn one_origin(local: &Local, demo_case: &str) {
    use futures::{SinkExt, StreamExt};
    let web = local.state()["components"]["web"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let issuer = local.state()["components"]["issuer"]["endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, status_text, _) = local.chronoctl(&["status"]);
    assert!(
        status_text.contains(&format!("app: {web}/")),
        "{status_text}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .unwrap();
        let config: Value = http
            .get(format!("{web}/config.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(config["api_url"], web.as_str());
        assert_eq!(
            config["ws_url"],
            format!("{}/api/v1/ai/ws", web.replace("http://", "ws://"))
        );
        assert_eq!(config["oidc"]["issuer"], issuer.as_str());
        assert_eq!(config["oidc"]["redirect_uri"], format!("{web}/callback"));

        // the app: any page path is index.html, assets are cached for good, a missing
        // asset is a 404; every answer carries the CSP
        for path in ["/", "/cases/123/timeline", "/callback?code=x&state=y"] {
            let resp = http.get(format!("{web}{path}")).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
            let csp = resp.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .to_owned();
            assert!(
                csp.contains("script-src 'self'") && csp.contains(&issuer),
                "{csp}"
            );
            assert_eq!(resp.headers()["x-frame-options"], "DENY");
            assert_eq!(resp.text().await.unwrap(), INDEX_HTML, "{path}");
        }
        let asset = http
            .get(format!("{web}/assets/app-1a2b3c.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(asset.status(), 200);
        assert!(
            asset.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/javascript")
        );
        let missing = http
            .get(format!("{web}/assets/nope.js"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        // the WebSocket integration path of AWS is not reachable from outside
        let gateway = http
            .post(format!("{web}/api/v1/ai/ws/gateway"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(gateway.status(), 404);

        // the API and the AI chat with a token from the code flow
        let analyst = login(&http, &config, "analyst").await;
        let cases: Value = http
            .get(format!("{web}/api/v1/cases"))
            .bearer_auth(&analyst)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            cases["cases"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["id"] == demo_case),
            "{cases}"
        );
        let ask = serde_json::json!({"case_id": demo_case, "question": "show me failed logons"});
        let chat = http
            .post(format!("{web}/api/v1/ai/chat"))
            .bearer_auth(&analyst)
            .json(&ask)
            .send()
            .await
            .unwrap();
        assert_eq!(chat.status(), 200);
        let chat: Value = chat.json().await.unwrap();
        assert_eq!(chat["kind"], "filter", "{chat}");
        let ws_url = config["ws_url"].as_str().unwrap();
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}?token={analyst}"))
            .await
            .unwrap();
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            ask.to_string(),
        ))
        .await
        .unwrap();
        let reply = tokio::time::timeout(std::time::Duration::from_secs(30), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let reply: Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
        assert_eq!(reply["kind"], "filter", "{reply}");
        assert_eq!(
            reply["filter"], chat["filter"],
            "the same answer on both doors"
        );
        match tokio_tungstenite::connect_async(format!("{ws_url}?token=forged")).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401)
            }
            other => panic!("a forged token must be refused at the upgrade: {other:?}"),
        }

        // seed a case with synthetic events; the histogram counts them all
        let admin = login(&http, &config, "admin").await;
        let case: Value = http
            .post(format!("{web}/api/v1/cases"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({"name": "seeded"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let seeded = case["id"].as_str().unwrap().to_owned();
        local.ok(&["seed", "--case", &seeded, "--events", "20000"]);
        let histogram: Value = http
            .post(format!("{web}/api/v1/cases/{seeded}/events/histogram"))
            .bearer_auth(&admin)
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(histogram["total"], 20000, "{histogram}");
        assert_eq!(
            histogram["interval"], "12h",
            "30 days in at most 100 buckets"
        );
    });
}
