//! Test helpers: the real `warren` binary on a free port, and a raw AMQP client for malformed input.
#![allow(dead_code)]

pub mod lapin_on_shard;
pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct TestBroker {
    pub addr: SocketAddr,
    child: Child,
    _data: TempDir,
    /// Every line the broker logged so far (it runs with RUST_LOG=warren=debug).
    log: Arc<Mutex<Vec<String>>>,
    shards: usize,
    args: Vec<String>,
}

/// A directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("warren-test-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `warren` with `shards` shards on 127.0.0.1, port 0, and waits until it listens.
pub fn start_broker(shards: usize) -> TestBroker {
    start_broker_with(shards, &[])
}

pub fn start_broker_with(shards: usize, extra: &[&str]) -> TestBroker {
    let data = TempDir::new("broker");
    let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    let (addr, child, log) = spawn_broker(shards, &data, &args);
    TestBroker { addr, child, _data: data, log, shards, args }
}

fn spawn_broker(shards: usize, data: &TempDir, extra: &[String]) -> (SocketAddr, Child, Arc<Mutex<Vec<String>>>) {
    // WARREN_BIN runs the suite against another build (e.g. target/release/warren).
    let bin = std::env::var("WARREN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_warren").to_string());
    let mut child = Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--management-listen", "off", "--prometheus-listen", "off"])
        .args(["--shards", &shards.to_string(), "--data-dir"])
        .arg(&data.0)
        .args(extra)
        .env("RUST_LOG", "warren=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start warren");
    let log = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = log.clone();
    let echo = std::env::var_os("WARREN_TEST_LOG").is_some();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[warren] {line}");
            }
            sink.lock().unwrap().push(line);
        }
    });
    // Its first line names the port. Bounded: a broker that never starts fails the test (and shows
    // what it logged) instead of hanging it.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let more = log.clone();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        let _ = tx.send(lines.next().unwrap_or_default());
        // The lines after the first (the HTTP and AMQPS listeners) join the log, as "stdout: ...";
        // reading them also keeps the pipe open, so the broker never writes to a closed one.
        for line in lines {
            more.lock().unwrap().push(format!("stdout: {line}"));
        }
    });
    let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("warren did not start within 30 s; it logged:\n{}", log.lock().unwrap().join("\n"));
    };
    let addr = line
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from warren: {line:?}"));
    (addr, child, log)
}

impl TestBroker {
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The first log line from index `from` on that contains `needle`, waiting up to 5 s for it.
    pub fn wait_log(&self, from: usize, needle: &str) -> Option<String> {
        for _ in 0..500 {
            if let Some(l) = self.log.lock().unwrap().iter().skip(from).find(|l| l.contains(needle)) {
                return Some(l.clone());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The lines logged from index `from` on (a long test reads only what is new).
    pub fn log_lines_from(&self, from: usize) -> Vec<String> {
        self.log.lock().unwrap().iter().skip(from).cloned().collect()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGKILL: a crash at whatever moment this is.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the broker again on the same data dir (after `kill` or `terminate`), on a new port.
    pub fn restart(&mut self) {
        let (addr, child, log) = spawn_broker(self.shards, &self._data, &self.args);
        (self.addr, self.child, self.log) = (addr, child, log);
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self._data.0
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit; returns whether it did.
    pub fn terminate(&mut self) -> bool {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The test failed: show what the broker said.
            for line in self.log.lock().map(|l| l.clone()).unwrap_or_default() {
                eprintln!("[warren] {line}");
            }
        }
        if !self.terminate() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
