//! The management API's changes (PUT, POST, DELETE), each through the admin socket's verbs:
//! queues, exchanges, bindings, vhosts, users, permissions, definitions, purge, closing a
//! connection. Status codes as RabbitMQ's: 201 created, 204 done or already there, 404 missing,
//! 400 refused by the broker (an inequivalent redeclare). Who may change what is RabbitMQ's rule
//! table (`auth::needs`).

use hyper::header::{HeaderValue, LOCATION};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::admin_client::{Admin, AdminError};
use super::auth::{Caller, Need, needs};
use super::limit_writes;
use super::server::{Node, Resp, error, json_reply, no_content, not_found};
use super::shapes;

fn created() -> Resp {
    json_reply(StatusCode::CREATED, &json!({}))
}

fn bad_request(reason: &str) -> Resp {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

/// 404 for the broker's "no such ..." refusals, the error itself otherwise.
fn missing_is_404(r: Result<Value, AdminError>) -> Result<Resp, AdminError> {
    match r {
        Ok(_) => Ok(no_content()),
        Err(AdminError::Refused(e)) if e.starts_with("no ") || e.contains("NOT_FOUND") => Ok(not_found()),
        Err(e) => Err(e),
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

async fn has_vhost(admin: &Admin, vhost: &str) -> Result<bool, AdminError> {
    Ok(admin.rows("list_vhosts", vec![], "/").await?.iter().any(|v| v["name"] == vhost))
}

/// Applies a definitions document holding just what the request declares.
async fn import(admin: &Admin, defs: Value) -> Result<Value, AdminError> {
    admin.ask("import_definitions", vec![defs.to_string()], "/").await
}

/// The answer refusing a change the caller may not make (RabbitMQ's rule table), or None.
async fn refuses(admin: &Admin, caller: &Caller, method: &Method, segs: &[&str]) -> Option<Result<Resp, AdminError>> {
    let Some(needs) = needs(method, segs) else { return caller.not_administrator().map(Ok) };
    // Closing a connection: whose it is decides.
    let mut conn_user = None;
    if let (Some(Need::OwnConnection), ["connections", c]) = (needs.first(), segs) {
        let conns = match admin.rows("list_connections", vec![], "/").await {
            Ok(rows) => rows,
            Err(e) => return Some(Err(e)),
        };
        let found =
            conns.into_iter().find(|x| x["name"] == *c || x["pid"].as_u64().is_some_and(|p| c.parse() == Ok(p)));
        conn_user = found.and_then(|x| x.get("user").and_then(Value::as_str).map(String::from));
    }
    needs.into_iter().find_map(|n| caller.refuses(n, conn_user.as_deref())).map(Ok)
}

/// The change a request asks for, or None when the method and path name none.
pub async fn handle(
    node: &Node,
    caller: &Caller,
    method: &Method,
    segs: &[&str],
    body: &Value,
) -> Option<Result<Resp, AdminError>> {
    let admin = &node.admin;
    let known = matches!(
        (method, segs),
        (&Method::PUT | &Method::DELETE, ["queues" | "exchanges" | "permissions", _, _])
            | (&Method::DELETE, ["queues", _, _, "contents"])
            | (&Method::DELETE, ["connections", _])
            | (&Method::PUT | &Method::DELETE, ["vhosts" | "users", _])
            | (&Method::POST, ["definitions"])
            | (&Method::PUT | &Method::DELETE, ["policies", _, _])
            | (&Method::PUT | &Method::DELETE, ["vhost-limits" | "user-limits", _, _])
            | (&Method::POST, ["bindings", _, "e", _, "q" | "e", _])
            | (&Method::DELETE, ["bindings", _, "e", _, "q" | "e", _, _])
    );
    if !known {
        return None;
    }
    if let Some(refused) = refuses(admin, caller, method, segs).await {
        return Some(refused);
    }
    let str_field = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let bool_field = |k: &str, default: bool| body.get(k).and_then(Value::as_bool).unwrap_or(default);
    let args = || body.get("arguments").cloned().unwrap_or_else(|| json!({}));
    Some(
        async {
            Ok::<_, AdminError>(match (method, segs) {
                (&Method::PUT, ["queues", v, q]) => {
                    if !has_vhost(admin, v).await? {
                        return Ok(not_found());
                    }
                    // RabbitMQ's defaults for a queue PUT: durable, not auto-delete.
                    let def = json!({
                        "name": q, "vhost": v, "durable": bool_field("durable", true),
                        "auto_delete": bool_field("auto_delete", false), "arguments": args(),
                    });
                    let reply = admin.rows("declare_queue", vec![def.to_string()], v).await?;
                    if reply.first().is_some_and(|r| r["created"] == true) { created() } else { no_content() }
                }
                (&Method::DELETE, ["queues", v, q]) => {
                    missing_is_404(admin.ask("delete_queue", strings(&[q]), v).await)?
                }
                (&Method::DELETE, ["queues", v, q, "contents"]) => {
                    missing_is_404(admin.ask("purge_queue", strings(&[q]), v).await)?
                }
                (&Method::PUT, ["exchanges", v, x]) => {
                    if !has_vhost(admin, v).await? {
                        return Ok(not_found());
                    }
                    if x.is_empty() || x.starts_with("amq.") {
                        let reason = format!("exchange name '{x}' contains reserved prefix 'amq.*'");
                        return Ok(error(StatusCode::FORBIDDEN, "access_refused", &reason));
                    }
                    let Some(kind) = str_field("type") else { return Ok(bad_request("exchange type is required")) };
                    let existed = admin
                        .rows("exchange_details", vec![], "/")
                        .await?
                        .iter()
                        .any(|e| e["vhost"] == *v && e["name"] == *x);
                    let def = json!({
                        "name": x, "vhost": v, "type": kind, "durable": bool_field("durable", true),
                        "auto_delete": bool_field("auto_delete", false), "internal": bool_field("internal", false),
                        "arguments": args(),
                    });
                    import(admin, json!({ "exchanges": [def] })).await?;
                    if existed { no_content() } else { created() }
                }
                (&Method::DELETE, ["exchanges", v, x]) => {
                    missing_is_404(admin.ask("delete_exchange", strings(&[x]), v).await)?
                }
                (&Method::POST, ["bindings", v, "e", source, kind, dest]) => {
                    let key = str_field("routing_key").unwrap_or_default();
                    let def = json!({
                        "source": source, "vhost": v, "destination": dest,
                        "destination_type": if *kind == "q" { "queue" } else { "exchange" },
                        "routing_key": key, "arguments": args(),
                    });
                    import(admin, json!({ "bindings": [def] })).await?;
                    let mut r = created();
                    let props = shapes::properties_key(&key, &args());
                    if let Ok(h) = HeaderValue::from_str(&props) {
                        r.headers_mut().insert(LOCATION, h);
                    }
                    r
                }
                (&Method::DELETE, ["bindings", v, "e", source, kind, dest, props]) => {
                    let kind = if *kind == "q" { "queue" } else { "exchange" };
                    let found = admin.rows("list_bindings", vec![], v).await?.into_iter().find(|b| {
                        b["source_name"] == *source
                            && b["destination_name"] == *dest
                            && b["destination_kind"] == kind
                            && shapes::binding(v, b).get("properties_key").and_then(Value::as_str) == Some(*props)
                    });
                    let Some(b) = found else { return Ok(not_found()) };
                    let def = json!({
                        "source": source, "vhost": v, "destination": dest, "destination_type": kind,
                        "routing_key": b.get("routing_key"), "arguments": b.get("arguments"),
                    });
                    admin.ask("unbind", vec![def.to_string()], v).await?;
                    no_content()
                }
                (&Method::PUT, ["vhosts", v]) => {
                    if has_vhost(admin, v).await? {
                        no_content()
                    } else {
                        admin.ask("add_vhost", strings(&[v]), "/").await?;
                        created()
                    }
                }
                (&Method::DELETE, ["vhosts", v]) => {
                    missing_is_404(admin.ask("delete_vhost", strings(&[v]), "/").await)?
                }
                (&Method::PUT, ["users", u]) => put_user(admin, u, body).await?,
                (&Method::DELETE, ["users", u]) => missing_is_404(admin.ask("delete_user", strings(&[u]), "/").await)?,
                (&Method::PUT, ["permissions", v, u]) => {
                    if !has_vhost(admin, v).await? {
                        return Ok(not_found());
                    }
                    let had = admin.rows("list_permissions", vec![], v).await?.iter().any(|p| p["user"] == *u);
                    let perms = ["configure", "write", "read"].map(|k| str_field(k).unwrap_or_default());
                    let mut a = vec![u.to_string()];
                    a.extend(perms);
                    admin.ask("set_permissions", a, v).await?;
                    if had { no_content() } else { created() }
                }
                (&Method::DELETE, ["permissions", v, u]) => {
                    let had = admin
                        .rows("list_permissions", vec![], v)
                        .await
                        .unwrap_or_default()
                        .iter()
                        .any(|p| p["user"] == *u);
                    if !had {
                        return Ok(not_found());
                    }
                    admin.ask("clear_permissions", strings(&[u]), v).await?;
                    no_content()
                }
                (&Method::PUT, ["policies", v, p]) => {
                    if !has_vhost(admin, v).await? {
                        return Ok(not_found());
                    }
                    let had = admin.rows("list_policies", vec![], v).await?.iter().any(|x| x["name"] == *p);
                    let definition = body.get("definition").cloned().unwrap_or_else(|| json!({}));
                    let priority = body.get("priority").and_then(Value::as_i64).unwrap_or(0);
                    let a = vec![
                        p.to_string(),
                        str_field("pattern").unwrap_or_default(),
                        definition.to_string(),
                        priority.to_string(),
                        str_field("apply-to").unwrap_or_else(|| "all".into()),
                    ];
                    admin.ask("set_policy", a, v).await?;
                    if had { no_content() } else { created() }
                }
                (&Method::DELETE, ["policies", v, p]) => {
                    let had = admin
                        .rows("list_policies", vec![], v)
                        .await
                        .unwrap_or_default()
                        .iter()
                        .any(|x| x["name"] == *p);
                    if !had {
                        return Ok(not_found());
                    }
                    admin.ask("clear_policy", strings(&[p]), v).await?;
                    no_content()
                }
                (&Method::PUT, ["vhost-limits", v, name]) => {
                    limit_writes::vhost_limit(admin, v, name, Some(body)).await?
                }
                (&Method::DELETE, ["vhost-limits", v, name]) => limit_writes::vhost_limit(admin, v, name, None).await?,
                (&Method::PUT, ["user-limits", u, name]) => {
                    limit_writes::user_limit(admin, u, name, Some(body)).await?
                }
                (&Method::DELETE, ["user-limits", u, name]) => limit_writes::user_limit(admin, u, name, None).await?,
                (&Method::POST, ["definitions"]) => {
                    import(admin, body.clone()).await?;
                    no_content()
                }
                (&Method::DELETE, ["connections", c]) => {
                    let why = "Closed via management plugin";
                    missing_is_404(admin.ask("close_connection", strings(&[c, why]), "/").await)?
                }
                _ => return Ok(not_found()),
            })
        }
        .await,
    )
}

/// PUT /api/users/NAME: `password` (hashed here by the broker) or `password_hash`, and `tags`
/// as a list or RabbitMQ 3.x's comma-separated string.
async fn put_user(admin: &Admin, user: &str, body: &Value) -> Result<Resp, AdminError> {
    let tags: Vec<String> = match body.get("tags") {
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => Vec::new(),
    };
    let existed = admin.rows("list_users", vec![], "/").await?.iter().any(|u| u["user"] == user);
    if let Some(hash) = body.get("password_hash").and_then(Value::as_str) {
        let algorithm =
            body.get("hashing_algorithm").cloned().unwrap_or_else(|| json!("rabbit_password_hashing_sha256"));
        let def = json!({ "name": user, "password_hash": hash, "hashing_algorithm": algorithm, "tags": tags });
        import(admin, json!({ "users": [def] })).await?;
    } else if let Some(password) = body.get("password").and_then(Value::as_str) {
        let verb = if existed { "change_password" } else { "add_user" };
        admin.ask(verb, strings(&[user, password]), "/").await?;
        let mut a = vec![user.to_string()];
        a.extend(tags);
        admin.ask("set_user_tags", a, "/").await?;
    } else if existed {
        let mut a = vec![user.to_string()];
        a.extend(tags);
        admin.ask("set_user_tags", a, "/").await?;
    } else {
        return Ok(bad_request("password or password_hash is required for a new user"));
    }
    Ok(if existed { no_content() } else { created() })
}
