//! The HTTP side's way to the shards: warrenctl's admin socket (src/admin.rs), one request per
//! connection, so the management API never touches shard state itself.

use std::path::PathBuf;

use serde_json::{Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::admin::Request;

/// How long a request waits for the admin socket to appear: 40 x 50 ms.
const START_TRIES: u32 = 40;
const START_RETRY: std::time::Duration = std::time::Duration::from_millis(50);

/// Why an admin request got no answer: the broker said no (its text), or it could not be asked.
#[derive(Debug)]
pub enum AdminError {
    Refused(String),
    Unreachable(String),
}

#[derive(Clone)]
pub struct Admin {
    socket: PathBuf,
}

pub type Object = Map<String, Value>;

impl Admin {
    pub fn new(socket: PathBuf) -> Self {
        Self { socket }
    }

    /// Sends one verb and reads the whole reply.
    pub async fn ask(&self, verb: &str, args: Vec<String>, vhost: &str) -> Result<Value, AdminError> {
        let unreachable = |e: std::io::Error| AdminError::Unreachable(format!("{}: {e}", self.socket.display()));
        let req = Request { verb: verb.into(), args, vhost: vhost.into() };
        let mut line = serde_json::to_vec(&req).map_err(|e| AdminError::Unreachable(e.to_string()))?;
        line.push(b'\n');
        let mut s = self.connect().await.map_err(unreachable)?;
        s.write_all(&line).await.map_err(unreachable)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(unreachable)?;
        let reply: Value = serde_json::from_slice(&out).map_err(|e| AdminError::Unreachable(e.to_string()))?;
        match reply.get("error").and_then(Value::as_str) {
            Some(e) => Err(AdminError::Refused(e.into())),
            None => Ok(reply),
        }
    }

    /// Connects, waiting out the moment at start before shard 0 serves the socket.
    async fn connect(&self) -> std::io::Result<UnixStream> {
        let mut tries = 0;
        loop {
            match UnixStream::connect(&self.socket).await {
                Err(e) if tries < START_TRIES => {
                    log::debug!("admin socket {}: {e}; trying again", self.socket.display());
                    tries += 1;
                    tokio::time::sleep(START_RETRY).await;
                }
                r => return r,
            }
        }
    }

    /// A table verb's rows as objects keyed by its column names.
    pub async fn rows(&self, verb: &str, args: Vec<String>, vhost: &str) -> Result<Vec<Object>, AdminError> {
        Ok(objects(&self.ask(verb, args, vhost).await?))
    }
}

/// `{"columns", "rows"}` → one object per row.
pub fn objects(reply: &Value) -> Vec<Object> {
    let columns: Vec<&str> =
        reply["columns"].as_array().map(|c| c.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let rows = reply["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    rows.iter()
        .filter_map(Value::as_array)
        .map(|r| columns.iter().zip(r).map(|(c, v)| (c.to_string(), v.clone())).collect())
        .collect()
}
