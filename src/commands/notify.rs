//! `guard --notify URL`: one JSON event per step, POSTed in order by a task of its own so
//! that a slow or failing webhook never delays a check or a rollback. A notification that
//! fails is a warning.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::printer::Printer;

/// How long one POST may take, and how long the end of the run waits for the queue.
const POST_TIMEOUT: Duration = Duration::from_secs(5);
const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct Notifier {
    queue: Option<mpsc::UnboundedSender<Value>>,
    worker: Option<JoinHandle<u32>>,
    location: String,
    sequence: u64,
}

impl Notifier {
    /// A notifier that posts to `url`, or does nothing without one.
    pub(crate) fn new(url: Option<String>, printer: Printer, location: String) -> Notifier {
        let Some(url) = url else {
            return Notifier {
                queue: None,
                worker: None,
                location,
                sequence: 0,
            };
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let worker = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(POST_TIMEOUT)
                .user_agent(concat!("tfrollback/", env!("CARGO_PKG_VERSION")))
                .build()
                .unwrap_or_default();
            let mut failed = 0;
            while let Some(event) = rx.recv().await {
                let name = event["event"].as_str().unwrap_or("event").to_string();
                let sent = client.post(&url).json(&event).send().await;
                let problem = match sent {
                    Ok(answer) if answer.status().is_success() => None,
                    Ok(answer) => Some(format!("HTTP {}", answer.status().as_u16())),
                    Err(e) => Some(e.to_string()),
                };
                if let Some(problem) = problem {
                    failed += 1;
                    printer.note(&format!(
                        "warning: the notification `{name}` to --notify failed ({problem}); guard goes on"
                    ));
                }
            }
            failed
        });
        Notifier {
            queue: Some(tx),
            worker: Some(worker),
            location,
            sequence: 0,
        }
    }

    /// Queues one event: `event` names it, `text` is the sentence people read.
    pub(crate) fn send(&mut self, event: &str, text: String, details: Value) {
        let Some(queue) = &self.queue else {
            return;
        };
        self.sequence += 1;
        let mut body = json!({
            "event": event,
            "sequence": self.sequence,
            "time": jiff::Timestamp::now().to_string(),
            "location": self.location,
            "text": format!("tfrollback guard: {text}"),
        });
        if let (Some(body), Value::Object(details)) = (body.as_object_mut(), details) {
            for (k, v) in details {
                body.entry(k).or_insert(v);
            }
        }
        let _ = queue.send(body);
    }

    /// Sends what is queued (bounded in time) and says how many notifications failed.
    pub(crate) async fn finish(&mut self) -> u32 {
        self.queue = None;
        let Some(worker) = self.worker.take() else {
            return 0;
        };
        match tokio::time::timeout(DRAIN_TIMEOUT, worker).await {
            Ok(Ok(failed)) => failed,
            _ => 1,
        }
    }
}
