//! An admin request parsed: one variant per verb with its arguments named and typed, so the
//! dispatch in `run` is one function per verb and a missing argument is caught in one place.

use super::Request;
use super::messages::{AckMode, GetRequest, PublishRequest};

#[derive(Debug, PartialEq)]
pub enum Verb {
    ListVhosts,
    ListUsers,
    ListPermissions,
    ListExchanges,
    ListBindings,
    ListQueues,
    ListConsumers,
    ListConnections,
    ListChannels,
    ListShardMessages,
    /// By id or name, with the reason the client is given.
    CloseConnection {
        which: String,
        why: String,
    },
    PurgeQueue {
        queue: String,
    },
    DeleteQueue {
        queue: String,
    },
    ExportDefinitions,
    ImportDefinitions {
        json: String,
    },
    AddVhost {
        vhost: String,
    },
    DeleteVhost {
        vhost: String,
    },
    AddUser {
        user: String,
        password: String,
    },
    ChangePassword {
        user: String,
        password: String,
    },
    SetUserTags {
        user: String,
        tags: Vec<String>,
    },
    DeleteUser {
        user: String,
    },
    SetPermissions {
        user: String,
        configure: String,
        write: String,
        read: String,
    },
    ClearPermissions {
        user: String,
    },
    /// The management API's login check.
    Authenticate {
        user: String,
        password: String,
        loopback: bool,
    },
    QueueDetails,
    ExchangeDetails,
    /// A RabbitMQ queue definition (JSON).
    DeclareQueue {
        definition: String,
    },
    Alarms,
    DeleteExchange {
        exchange: String,
    },
    /// A RabbitMQ binding definition (JSON).
    Unbind {
        binding: String,
    },
    SetPolicy {
        name: String,
        pattern: String,
        /// The policy's settings (a JSON object).
        definition: String,
        priority: i64,
        apply_to: String,
    },
    ClearPolicy {
        name: String,
    },
    ListPolicies,
    /// Reads the TLS certificate and key files again (new connections use them).
    ReloadTls,
    /// A JSON object of limits (max-connections, max-queues) for the request's vhost.
    SetVhostLimits {
        definition: String,
    },
    ClearVhostLimits,
    ListVhostLimits,
    /// A JSON object of limits (max-connections, max-channels) merged into the user's.
    SetUserLimits {
        user: String,
        definition: String,
    },
    /// One limit by name, or "all".
    ClearUserLimits {
        user: String,
        limit: String,
    },
    ListUserLimits {
        user: Option<String>,
    },
    /// Every shard's message counters (the management API's sampler).
    MessageStats,
    /// Vhosts, queue details, connections, channels and mesh counts at once (the management API).
    Snapshot,
    /// The management API's POST .../get.
    GetMessages(GetRequest),
    /// The management API's POST .../publish.
    PublishMessage(PublishRequest),
}

impl Verb {
    pub fn parse(req: &Request) -> Result<Verb, String> {
        let arg = |i: usize, name: &str| -> Result<String, String> {
            req.args.get(i).cloned().ok_or_else(|| format!("{}: missing argument <{name}>", req.verb))
        };
        Ok(match req.verb.as_str() {
            "list_vhosts" => Verb::ListVhosts,
            "list_users" => Verb::ListUsers,
            "list_permissions" => Verb::ListPermissions,
            "list_exchanges" => Verb::ListExchanges,
            "list_bindings" => Verb::ListBindings,
            "list_queues" => Verb::ListQueues,
            "list_consumers" => Verb::ListConsumers,
            "list_connections" => Verb::ListConnections,
            "list_channels" => Verb::ListChannels,
            "list_shard_messages" => Verb::ListShardMessages,
            "close_connection" => Verb::CloseConnection {
                which: arg(0, "connection")?,
                why: arg(1, "explanation").unwrap_or_else(|_| "Closed via warrenctl".into()),
            },
            "purge_queue" => Verb::PurgeQueue { queue: arg(0, "queue")? },
            "delete_queue" => Verb::DeleteQueue { queue: arg(0, "queue")? },
            "export_definitions" => Verb::ExportDefinitions,
            "import_definitions" => Verb::ImportDefinitions { json: arg(0, "definitions")? },
            "add_vhost" => Verb::AddVhost { vhost: arg(0, "vhost")? },
            "delete_vhost" => Verb::DeleteVhost { vhost: arg(0, "vhost")? },
            "add_user" => Verb::AddUser { user: arg(0, "username")?, password: arg(1, "password")? },
            "change_password" => Verb::ChangePassword { user: arg(0, "username")?, password: arg(1, "password")? },
            "set_user_tags" => {
                Verb::SetUserTags { user: arg(0, "username")?, tags: req.args.iter().skip(1).cloned().collect() }
            }
            "delete_user" => Verb::DeleteUser { user: arg(0, "username")? },
            "set_permissions" => Verb::SetPermissions {
                user: arg(0, "username")?,
                configure: arg(1, "conf")?,
                write: arg(2, "write")?,
                read: arg(3, "read")?,
            },
            "clear_permissions" => Verb::ClearPermissions { user: arg(0, "username")? },
            "authenticate" => Verb::Authenticate {
                user: arg(0, "username")?,
                password: arg(1, "password")?,
                loopback: arg(2, "loopback")? == "true",
            },
            "queue_details" => Verb::QueueDetails,
            "exchange_details" => Verb::ExchangeDetails,
            "declare_queue" => Verb::DeclareQueue { definition: arg(0, "definition")? },
            "alarms" => Verb::Alarms,
            "delete_exchange" => Verb::DeleteExchange { exchange: arg(0, "exchange")? },
            "unbind" => Verb::Unbind { binding: arg(0, "binding")? },
            "set_policy" => Verb::SetPolicy {
                name: arg(0, "name")?,
                pattern: arg(1, "pattern")?,
                definition: arg(2, "definition")?,
                priority: match req.args.get(3) {
                    Some(p) => p.parse().map_err(|_| format!("set_policy: priority '{p}' is not an integer"))?,
                    None => 0,
                },
                apply_to: req.args.get(4).cloned().unwrap_or_else(|| "all".into()),
            },
            "clear_policy" => Verb::ClearPolicy { name: arg(0, "name")? },
            "list_policies" => Verb::ListPolicies,
            "reload_tls" => Verb::ReloadTls,
            "set_vhost_limits" => Verb::SetVhostLimits { definition: arg(0, "definition")? },
            "clear_vhost_limits" => Verb::ClearVhostLimits,
            "list_vhost_limits" => Verb::ListVhostLimits,
            "set_user_limits" => Verb::SetUserLimits { user: arg(0, "username")?, definition: arg(1, "definition")? },
            "clear_user_limits" => Verb::ClearUserLimits {
                user: arg(0, "username")?,
                limit: req.args.get(1).cloned().unwrap_or_else(|| "all".into()),
            },
            "list_user_limits" => Verb::ListUserLimits { user: req.args.first().cloned() },
            "message_stats" => Verb::MessageStats,
            "snapshot" => Verb::Snapshot,
            "get_messages" => Verb::GetMessages(GetRequest {
                user: arg(0, "username")?,
                queue: arg(1, "queue")?,
                count: arg(2, "count")?.parse().map_err(|_| "get_messages: count is not a number".to_string())?,
                ackmode: AckMode::parse(&arg(3, "ackmode")?)?,
                truncate: match req.args.get(4) {
                    Some(t) => Some(t.parse().map_err(|_| "get_messages: truncate is not a number".to_string())?),
                    None => None,
                },
            }),
            "publish_message" => Verb::PublishMessage(PublishRequest {
                user: arg(0, "username")?,
                exchange: arg(1, "exchange")?,
                routing_key: arg(2, "routing_key")?,
                properties: arg(3, "properties")?,
                payload_base64: arg(4, "payload")?,
            }),
            other => return Err(format!("unknown command '{other}'")),
        })
    }

    /// Verbs that only read: the management API and Prometheus scrapes ask them often, so they are
    /// logged at debug, changes at info.
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Verb::ListVhosts
                | Verb::ListUsers
                | Verb::ListPermissions
                | Verb::ListExchanges
                | Verb::ListBindings
                | Verb::ListQueues
                | Verb::ListConsumers
                | Verb::ListConnections
                | Verb::ListChannels
                | Verb::ListShardMessages
                | Verb::ExportDefinitions
                | Verb::Authenticate { .. }
                | Verb::QueueDetails
                | Verb::ExchangeDetails
                | Verb::Alarms
                | Verb::ListPolicies
                | Verb::ListVhostLimits
                | Verb::ListUserLimits { .. }
                | Verb::MessageStats
                | Verb::Snapshot
        )
    }

    /// How it is logged: passwords left out.
    pub fn redacted(&self) -> String {
        match self {
            Verb::AddUser { user, .. } => format!("AddUser {{ user: {user:?} }}"),
            Verb::ChangePassword { user, .. } => format!("ChangePassword {{ user: {user:?} }}"),
            Verb::PublishMessage(p) => {
                format!("PublishMessage {{ exchange: {:?}, routing_key: {:?} }}", p.exchange, p.routing_key)
            }
            Verb::Authenticate { user, loopback, .. } => {
                format!("Authenticate {{ user: {user:?}, loopback: {loopback} }}")
            }
            other => format!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(verb: &str, args: &[&str]) -> Request {
        Request { verb: verb.into(), args: args.iter().map(|a| a.to_string()).collect(), vhost: "/".into() }
    }

    #[test]
    fn parses_arguments_and_names_what_is_missing() {
        assert_eq!(
            Verb::parse(&req("set_permissions", &["u", ".*", "", "^a"])),
            Ok(Verb::SetPermissions { user: "u".into(), configure: ".*".into(), write: "".into(), read: "^a".into() })
        );
        assert_eq!(
            Verb::parse(&req("set_permissions", &["u", ".*"])),
            Err("set_permissions: missing argument <write>".into())
        );
        assert_eq!(
            Verb::parse(&req("close_connection", &["7"])),
            Ok(Verb::CloseConnection { which: "7".into(), why: "Closed via warrenctl".into() })
        );
        assert_eq!(Verb::parse(&req("frobnicate", &[])), Err("unknown command 'frobnicate'".into()));
        assert_eq!(Verb::parse(&req("reload_tls", &[])), Ok(Verb::ReloadTls));
        assert_eq!(
            Verb::parse(&req("clear_user_limits", &["u"])),
            Ok(Verb::ClearUserLimits { user: "u".into(), limit: "all".into() })
        );
        assert_eq!(
            Verb::parse(&req("set_user_limits", &["u"])),
            Err("set_user_limits: missing argument <definition>".into())
        );
    }

    #[test]
    fn passwords_stay_out_of_the_log() {
        let v = Verb::parse(&req("add_user", &["bob", "s3cret"])).unwrap();
        assert!(!v.redacted().contains("s3cret") && v.redacted().contains("bob"));
        assert!(!v.reads_only() && Verb::ListQueues.reads_only());
    }
}
