//! `--cleanup`: removes what a run created on a Parlor server. Every user the run registers
//! is recorded ([`record`]); after the run, whether it passed or not, each is deleted through
//! the signed admin face (`POST /admin/user/delete`), which also dissolves the groups they
//! own. Their messages stay as the history of deleted accounts, out of every live user's
//! reach (`eraseMessages: false`: erasing rewrites every message, slow after a big run and
//! freeing no space). Before the run a signed
//! `/admin/user/list` proves that the admin listener answers and the secret is right, so a
//! run that could not clean up never starts.

use std::sync::Mutex;
use std::time::Instant;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::setup::{http_client, Progress};

/// The ids of the users this run registered, in the order they were registered.
static REGISTERED: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// Deletions in flight at once: well below the admin listener's `admin.max_connections`.
const CONCURRENCY: usize = 16;

/// Records a user the run registered.
pub fn record(id: u64) {
    REGISTERED.lock().unwrap_or_else(|p| p.into_inner()).push(id);
}

/// Where and how to reach the admin face.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Base URL of the admin listener (`admin.bind`).
    pub url: String,
    /// The server's `admin.secret`.
    pub secret: String,
}

/// What the deletions did, summed over the users.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub users: u64,
    pub groups_dissolved: u64,
}

impl Admin {
    /// A signed admin request; returns its `result` or the refusal as an error.
    async fn call(&self, http: &reqwest::Client, path: &str, body: &Value) -> Result<Value, String> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let timestamp = parlor_actors::now_ms().to_string();
        let sign = parlor::faces::admin::sign(&nonce, &self.secret, &timestamp);
        let url = format!("{}{path}", self.url.trim_end_matches('/'));
        let resp = http
            .post(&url)
            .header("nonce", nonce)
            .header("timestamp", timestamp)
            .header("sign", sign)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        let answer: Value = serde_json::from_str(&text)
            .map_err(|_| format!("{url}: HTTP {status}, not the admin face: {text}"))?;
        if answer["code"] != 0 {
            return Err(format!("{url}: refused (HTTP {status}): {answer}"));
        }
        Ok(answer["result"].clone())
    }

    /// Checks that the admin face answers a signed request before anything is created.
    pub async fn check(&self) -> Result<(), String> {
        let http = http_client()?;
        self.call(&http, "/admin/user/list", &json!({"count": 1}))
            .await
            .map(drop)
            .map_err(|e| format!("--cleanup needs the admin face: {e}"))
    }

    /// Deletes every user the run registered and dissolves the groups they own.
    pub async fn remove_registered(&self) -> Result<Removed, String> {
        let ids = std::mem::take(&mut *REGISTERED.lock().unwrap_or_else(|p| p.into_inner()));
        let http = http_client()?;
        let progress = Progress::new("deleted", ids.len());
        let started = Instant::now();
        let mut removed = Removed::default();
        let mut failed: Vec<String> = Vec::new();
        let mut answers = futures_util::stream::iter(ids)
            .map(|id| {
                let http = &http;
                async move {
                    let body = json!({"userId": id.to_string(), "eraseMessages": false});
                    let done = self.call(http, "/admin/user/delete", &body).await;
                    done.map_err(|e| format!("deleting user {id}: {e}"))
                }
            })
            .buffer_unordered(CONCURRENCY);
        // Every user is tried: one refusal does not leave the others behind.
        while let Some(answer) = answers.next().await {
            match answer {
                Ok(done) => {
                    progress.tick();
                    removed.users += 1;
                    removed.groups_dissolved += done["groupsDissolved"].as_u64().unwrap_or(0);
                }
                Err(e) => failed.push(e),
            }
        }
        eprintln!(
            "cleanup: deleted {} users ({} groups dissolved) in {:.1} s",
            removed.users,
            removed.groups_dissolved,
            started.elapsed().as_secs_f64()
        );
        match failed.first() {
            None => Ok(removed),
            Some(first) => Err(format!(
                "cleanup: {} users not deleted, the first: {first}",
                failed.len()
            )),
        }
    }
}
