//! warrenctl: rabbitmqctl's verbs for a running Warren, through its admin socket in the data dir.
//!
//!   warrenctl [--data-dir DIR | --config FILE] [-p VHOST] [--formatter table|json] COMMAND [ARGS...]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::{Value, json};
use warren::admin::{Request, SOCKET_NAME};
use warren::config::Config;

const COMMANDS: &str = "commands: list_vhosts, add_vhost VHOST, delete_vhost VHOST, list_users, \
add_user USER PASSWORD, delete_user USER, change_password USER PASSWORD, set_user_tags USER [TAG...], \
set_permissions [-p VHOST] USER CONF WRITE READ, clear_permissions [-p VHOST] USER, \
list_permissions [-p VHOST], list_queues [-p VHOST], list_exchanges [-p VHOST], list_bindings [-p VHOST], \
list_connections, list_channels, list_consumers [-p VHOST], list_shard_messages, close_connection PID|NAME [EXPLANATION], \
purge_queue [-p VHOST] QUEUE, delete_queue [-p VHOST] QUEUE, export_definitions FILE|-, \
import_definitions FILE, set_policy [-p VHOST] [--priority N] [--apply-to queues|exchanges|all] NAME PATTERN \
DEFINITION, clear_policy [-p VHOST] NAME, list_policies [-p VHOST], \
set_vhost_limits [-p VHOST] '{\"max-connections\": N, \"max-queues\": N}', clear_vhost_limits [-p VHOST], \
list_vhost_limits, set_user_limits USER '{\"max-connections\": N, \"max-channels\": N}', \
clear_user_limits USER [max-connections|max-channels|all], list_user_limits [USER], reload_tls";

#[derive(Parser)]
#[command(name = "warrenctl", about = "Manage a running Warren broker", after_help = COMMANDS)]
struct Args {
    /// The broker's data dir (its --data-dir); default: the one in --config, or the default config's.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The broker's config file, to find its data dir.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Virtual host.
    #[arg(short = 'p', long = "vhost", default_value = "/")]
    vhost: String,
    /// set_policy: the policy's priority (the highest matching one applies).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// set_policy: what it applies to (queues, exchanges or all).
    #[arg(long = "apply-to", default_value = "all")]
    apply_to: String,
    /// Output: aligned table (default) or json.
    #[arg(long, default_value = "table")]
    formatter: String,
    command: String,
    args: Vec<String>,
}

fn fail(code: u8, msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("Error: {msg}");
    ExitCode::from(code)
}

fn main() -> ExitCode {
    let a = Args::parse();
    if a.formatter != "table" && a.formatter != "json" {
        return fail(64, format!("unknown formatter '{}' (table or json)", a.formatter));
    }
    let data_dir = match (&a.data_dir, &a.config) {
        (Some(d), _) => d.clone(),
        (None, Some(c)) => match Config::load(c) {
            Ok(c) => c.data_dir,
            Err(e) => return fail(64, e),
        },
        (None, None) => Config::default().data_dir,
    };
    let socket = data_dir.join(SOCKET_NAME);
    let mut args = a.args.clone();
    let file = (a.command == "export_definitions").then(|| args.pop()).flatten();
    if a.command == "export_definitions" && file.is_none() {
        return fail(64, "export_definitions: missing argument <FILE> (or - for standard output)");
    }
    if a.command == "import_definitions" {
        let Some(path) = args.first() else { return fail(64, "import_definitions: missing argument <FILE>") };
        match std::fs::read_to_string(path) {
            Ok(text) => args = vec![text],
            Err(e) => return fail(66, format!("cannot read {path}: {e}")),
        }
    }
    if a.command == "set_policy" && args.len() == 3 {
        args.push(a.priority.to_string());
        args.push(a.apply_to.clone());
    }
    let req = Request { verb: a.command.clone(), args, vhost: a.vhost.clone() };
    let reply = match ask(&socket, &req) {
        Ok(r) => r,
        Err(e) => {
            return fail(
                69,
                format!(
                    "unable to reach Warren at {}: {e}. Is the broker running with this data dir?",
                    socket.display()
                ),
            );
        }
    };
    if let Some(e) = reply.get("error").and_then(Value::as_str) {
        return fail(1, e);
    }
    if let Some(d) = reply.get("definitions") {
        let text = serde_json::to_string_pretty(d).unwrap_or_default();
        match file.as_deref() {
            Some("-") => println!("{text}"),
            Some(path) => {
                if let Err(e) = std::fs::write(path, text) {
                    return fail(73, format!("cannot write {path}: {e}"));
                }
                eprintln!("Exported definitions to \"{path}\"");
            }
            None => {}
        }
        return ExitCode::SUCCESS;
    }
    print_table(&reply, a.formatter == "json");
    ExitCode::SUCCESS
}

fn ask(socket: &std::path::Path, req: &Request) -> std::io::Result<Value> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_vec(req)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    serde_json::from_slice(&out).map_err(std::io::Error::other)
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// rabbitmqctl's shapes: a JSON array of objects, or columns aligned under a header.
fn print_table(reply: &Value, as_json: bool) {
    let columns: Vec<&str> =
        reply["columns"].as_array().map(|c| c.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let rows: Vec<&Vec<Value>> =
        reply["rows"].as_array().map(|r| r.iter().filter_map(Value::as_array).collect()).unwrap_or_default();
    if as_json {
        let objects: Vec<Value> = rows
            .iter()
            .map(|r| Value::Object(columns.iter().zip(r.iter()).map(|(c, v)| (c.to_string(), v.clone())).collect()))
            .collect();
        println!("{}", json!(objects));
        return;
    }
    if columns.is_empty() {
        return;
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell).collect()).collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| cells.iter().map(|r| r.get(i).map_or(0, String::len)).chain([columns[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |vals: Vec<&str>| {
        let padded: Vec<String> = vals.iter().zip(&widths).map(|(v, w)| format!("{v:<w$}")).collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(columns.clone());
    for r in &cells {
        line(r.iter().map(String::as_str).collect());
    }
}
