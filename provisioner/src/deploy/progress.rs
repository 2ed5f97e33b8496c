//! Progress reporting of the deploy engine: the events it emits and three renderers —
//! live `indicatif` bars (one line per stack) on a terminal, plain lines when piped, and
//! one JSON object per event with `--output json`.
//!
//! Reporters only render; they never decide anything.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

/// One thing that happened during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A stack moved to a new state (`creating change set`, `CREATE_IN_PROGRESS`, ...).
    Stack {
        /// Short stack name.
        stack: String,
        /// Human-readable state.
        state: String,
        /// Resources finished so far.
        done: usize,
        /// Resources in the change set (0 when unknown).
        total: usize,
        /// Milliseconds since the stack started.
        elapsed_ms: u64,
    },
    /// A resource event streamed from CloudFormation.
    Resource {
        /// Short stack name.
        stack: String,
        /// Logical id.
        logical_id: String,
        /// Resource type.
        resource_type: String,
        /// Resource status.
        status: String,
        /// Status reason, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A stack finished (successfully or not).
    Done {
        /// Short stack name.
        stack: String,
        /// Outcome (`created`, `updated`, `unchanged`, `failed`, `skipped`, ...).
        outcome: String,
        /// Detail (root cause on failure).
        #[serde(skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Milliseconds since the stack started.
        elapsed_ms: u64,
    },
    /// A message about the run as a whole (lock, assets, bootstrap).
    Info {
        /// The message.
        message: String,
    },
}

/// Receives events; implementations must be cheap and never fail.
pub trait Reporter: Send + Sync + std::fmt::Debug {
    /// Handles one event.
    fn on(&self, event: &Event);
    /// Called once when the run is over (clears live bars).
    fn finish(&self) {}
}

/// Discards everything.
#[derive(Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn on(&self, _: &Event) {}
}

/// Keeps every event (tests, and the final JSON summary).
#[derive(Debug, Default)]
pub struct Collect(pub Mutex<Vec<Event>>);

impl Collect {
    /// A copy of the events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

impl Reporter for Collect {
    fn on(&self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}

/// One JSON object per event on stdout.
#[derive(Debug, Default)]
pub struct JsonLines;

impl Reporter for JsonLines {
    fn on(&self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
    }
}

/// Plain lines on stderr (not a terminal): state changes and failures, no per-resource
/// noise, each (state, done) of a stack once.
#[derive(Debug, Default)]
pub struct PlainLines {
    last: Mutex<BTreeMap<String, (String, usize)>>,
}

impl Reporter for PlainLines {
    fn on(&self, event: &Event) {
        let line = match event {
            Event::Stack {
                stack,
                state,
                done,
                total,
                elapsed_ms,
            } => {
                if let Ok(mut last) = self.last.lock() {
                    let now = (state.clone(), *done);
                    if last.get(stack) == Some(&now) {
                        return;
                    }
                    last.insert(stack.clone(), now);
                }
                format!("{stack}: {state} ({done}/{total}) {}", secs(*elapsed_ms))
            }
            Event::Resource { .. } => return,
            Event::Done {
                stack,
                outcome,
                detail,
                elapsed_ms,
            } => match detail {
                Some(d) => format!("{stack}: {outcome} {}\n{d}", secs(*elapsed_ms)),
                None => format!("{stack}: {outcome} {}", secs(*elapsed_ms)),
            },
            Event::Info { message } => message.clone(),
        };
        eprintln!("{line}");
    }
}

/// Live bars on a terminal: one line per stack with state, resources done/total, elapsed.
#[derive(Debug)]
pub struct LiveBars {
    multi: MultiProgress,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Default for LiveBars {
    fn default() -> Self {
        Self {
            multi: MultiProgress::new(),
            bars: Mutex::new(BTreeMap::new()),
        }
    }
}

impl LiveBars {
    fn bar(&self, stack: &str) -> Option<ProgressBar> {
        let mut bars = self.bars.lock().ok()?;
        Some(
            bars.entry(stack.to_owned())
                .or_insert_with(|| {
                    let pb = self.multi.add(ProgressBar::new_spinner());
                    if let Ok(style) = ProgressStyle::with_template(
                        "{spinner} {prefix:<12} {wide_msg} {pos}/{len} {elapsed}",
                    ) {
                        pb.set_style(style);
                    }
                    pb.set_prefix(stack.to_owned());
                    pb.enable_steady_tick(Duration::from_millis(120));
                    pb
                })
                .clone(),
        )
    }
}

impl Reporter for LiveBars {
    fn on(&self, event: &Event) {
        match event {
            Event::Stack {
                stack,
                state,
                done,
                total,
                ..
            } => {
                if let Some(pb) = self.bar(stack) {
                    pb.set_length(*total as u64);
                    pb.set_position(*done as u64);
                    pb.set_message(state.clone());
                }
            }
            Event::Resource { .. } => {}
            Event::Done {
                stack,
                outcome,
                detail,
                ..
            } => {
                if let Some(pb) = self.bar(stack) {
                    pb.finish_with_message(outcome.clone());
                }
                if let Some(d) = detail {
                    let _ = self.multi.println(d);
                }
            }
            Event::Info { message } => {
                let _ = self.multi.println(message);
            }
        }
    }

    fn finish(&self) {
        if let Ok(bars) = self.bars.lock() {
            for pb in bars.values() {
                if !pb.is_finished() {
                    pb.abandon();
                }
            }
        }
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialize_as_one_tagged_object() {
        let e = Event::Stack {
            stack: "data".into(),
            state: "UPDATE_IN_PROGRESS".into(),
            done: 3,
            total: 7,
            elapsed_ms: 1500,
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"stack","stack":"data","state":"UPDATE_IN_PROGRESS","done":3,"total":7,"elapsed_ms":1500}"#
        );
        let d = Event::Done {
            stack: "api".into(),
            outcome: "unchanged".into(),
            detail: None,
            elapsed_ms: 2,
        };
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"event":"done","stack":"api","outcome":"unchanged","elapsed_ms":2}"#
        );
    }

    #[test]
    fn plain_lines_print_each_state_once() {
        let p = PlainLines::default();
        let ev = |done| Event::Stack {
            stack: "net".into(),
            state: "CREATE_IN_PROGRESS".into(),
            done,
            total: 2,
            elapsed_ms: 0,
        };
        p.on(&ev(0));
        p.on(&ev(0));
        p.on(&ev(1));
        let last = p.last.lock().unwrap();
        assert_eq!(last.get("net"), Some(&("CREATE_IN_PROGRESS".to_owned(), 1)));
    }
}
