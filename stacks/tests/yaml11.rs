//! CloudFormation reads YAML templates as YAML 1.1. Every template we synthesize, loaded by
//! a YAML 1.1 loader (PyYAML's `SafeLoader`, from the project's `.venv`, where cfn-lint
//! brings it), must equal the model's JSON value exactly: same types (a string stays a
//! string, not a boolean, date or number), same keys, same values.
//!
//! Regression: `EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic: off` was read as
//! `false`, a preview's `chrono:expires-at` tag as a datetime, the retry counters `n:` of
//! the state machine as the key `false`.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono_stacks::StackKind;
use chrono_stacks::config::Config;
use chrono_stacks::synth::build_stacks;
use serde_json::Value;

/// Compares every `<name>.yaml` in a directory (YAML 1.1) with `<name>.json`, types
/// included; prints one line per difference and exits 1 if there is any.
const COMPARE: &str = r#"
import json, os, sys, yaml
def diff(a, b, path, out):
    if type(a) is not type(b):
        out.append(f"{path}: YAML 1.1 reads {a!r} ({type(a).__name__}), the model has {b!r} ({type(b).__name__})")
    elif isinstance(a, dict):
        if list(a) != list(b):
            out.append(f"{path}: keys {sorted(map(str, a))} != {sorted(b)}")
        for k in b:
            if k in a:
                diff(a[k], b[k], f"{path}.{k}", out)
    elif isinstance(a, list):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items != {len(b)}")
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, f"{path}[{i}]", out)
    elif a != b:
        out.append(f"{path}: {a!r} != {b!r}")
out, n = [], 0
d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if name.endswith(".yaml"):
        n += 1
        with open(os.path.join(d, name)) as f:
            loaded = yaml.load(f, Loader=yaml.SafeLoader)
        with open(os.path.join(d, name[:-5] + ".json")) as f:
            model = json.load(f)
        diff(loaded, model, name[:-5], out)
print("\n".join(out))
print(f"compared {n} templates", file=sys.stderr)
sys.exit(1 if out or n == 0 else 0)
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "{} not found; run `make venv` (it installs cfn-lint, which brings PyYAML)",
        p.display()
    );
    p
}

/// Writes each stack of each config as YAML and JSON, then compares them under YAML 1.1.
fn assert_same_under_yaml_1_1(configs: &[Config]) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let mut count = 0;
    for cfg in configs {
        for stack in build_stacks(cfg).unwrap() {
            let name = format!("{}-{}-{}", cfg.customer, cfg.stage, stack.kind);
            std::fs::write(
                dir.path().join(format!("{name}.yaml")),
                stack.template.to_yaml(),
            )
            .unwrap();
            let json: Value = stack.template.to_json();
            std::fs::write(dir.path().join(format!("{name}.json")), json.to_string()).unwrap();
            count += 1;
        }
    }
    let out = Command::new(python())
        .arg("-c")
        .arg(COMPARE)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "templates differ under YAML 1.1:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    count
}

fn customer_configs() -> Vec<Config> {
    let dir = root().join("customers");
    let mut configs: Vec<Config> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| Config::load(&p).unwrap())
        .collect();
    configs.sort_by(|a, b| (&a.customer, a.stage).cmp(&(&b.customer, b.stage)));
    configs
}

#[test]
fn every_customer_template_means_the_same_under_yaml_1_1() {
    let configs = customer_configs();
    assert!(configs.len() >= 3, "customers/ has the example configs");
    assert_eq!(
        assert_same_under_yaml_1_1(&configs),
        configs.len() * StackKind::ALL.len()
    );
}

#[test]
fn preview_expires_at_tag_and_tricky_user_tags_stay_strings_under_yaml_1_1() {
    // Tags reach every resource, so values a YAML 1.1 reader would turn into booleans,
    // numbers, dates or null exercise the writer everywhere.
    let yaml = "customer: dev-jane\naccount_id: \"999988887777\"\nregion: eu-west-1\nstage: preview\n\
                auth:\n  jwt_issuer: https://dev.eu.auth0.com/\n  jwt_audience: dev\n  app_client_id: abc\n\
                preview:\n  expires_at: 2026-12-01T00:00:00Z\n\
                tags:\n  on-call: \"off\"\n  billable: \"no\"\n  cost-center: \"0123\"\n  \
                since: \"2024-03-01\"\n  rotation: \"1:30\"\n  owner: \"~\"\n  y: \"n\"\n";
    let cfg = Config::parse("preview.yaml", yaml).unwrap();
    assert_eq!(
        cfg.preview.as_ref().unwrap().expires_at,
        "2026-12-01T00:00:00Z"
    );
    assert_eq!(assert_same_under_yaml_1_1(&[cfg]), StackKind::ALL.len());
}

#[test]
fn nlb_enforce_inbound_rules_off_is_the_string_off_in_the_compute_template() {
    let cfg = customer_configs().remove(0);
    let compute = build_stacks(&cfg)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == StackKind::Compute)
        .unwrap();
    let text = compute.template.to_yaml();
    assert!(
        text.contains("EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic: 'off'\n"),
        "the NLB setting must be quoted"
    );
}
