//! The `x-` arguments of queue.declare that change how a queue behaves, checked as RabbitMQ 3.10
//! checks them: a value of the wrong type or range is 406 PRECONDITION_FAILED with RabbitMQ's
//! text (`invalid arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}`), an
//! argument its queue type does not take likewise. Unknown `x-` arguments are kept and ignored,
//! as RabbitMQ does.

use crate::protocol::reply::ChannelError;

type Result<T> = std::result::Result<T, ChannelError>;
use crate::protocol::types::FieldValue;

use super::QueueFlags;

/// What a queue does when a publish would take it past `x-max-length` or `x-max-length-bytes`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready messages.
    #[default]
    DropHead,
    /// Refuse the new message (publisher confirms get basic.nack).
    RejectPublish,
    /// Refuse it and dead-letter it.
    RejectPublishDlx,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    /// Durable only, every message persisted, a delivery limit. (Replicated once Warren clusters.)
    Quorum,
}

/// A queue's behaviour as its arguments set it; the defaults are a plain classic queue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueArgs {
    pub kind: QueueType,
    /// `x-message-ttl`, ms.
    pub message_ttl: Option<u64>,
    /// `x-expires`, ms unused before the queue is deleted.
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-overflow` was given (a policy's overflow applies only when it was not).
    pub overflow_given: bool,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<crate::protocol::shortstr::ShortStr>,
    /// `x-max-priority`: priorities 0..=max (0 as good as none).
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    /// `x-delivery-limit` (quorum): deliveries after which a message is dead-lettered, not requeued.
    pub delivery_limit: Option<u64>,
}

/// RabbitMQ's name of a field value's type, as its error texts give it.
fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal(..) => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::ByteArray(_) => "binary",
    }
}

/// The arguments each queue type takes (RabbitMQ's `rabbit_queue_type:arguments`); any of the
/// others on a queue of this type is refused.
const CLASSIC_ONLY: &[&str] = &["x-max-priority", "x-queue-mode", "x-queue-version", "x-queue-master-locator"];
const QUORUM_ONLY: &[&str] = &[
    "x-delivery-limit",
    "x-quorum-initial-group-size",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-dead-letter-strategy",
    "x-queue-leader-locator",
];
const STREAM_ONLY: &[&str] = &["x-max-age", "x-stream-max-segment-size-bytes", "x-initial-cluster-size"];

/// Why a value is refused, printed as RabbitMQ's Erlang term.
enum Bad {
    Negative(i128),
    Zero,
    TooLarge(i128),
    /// `{unacceptable_type,T}`
    Type(&'static str),
    /// `"expected integer, got T"`
    NotInteger(&'static str),
    /// An atom or a quoted string, printed as given.
    Text(String),
}

impl Bad {
    fn term(&self) -> String {
        match self {
            Bad::Negative(n) => format!("{{value_negative,{n}}}"),
            Bad::Zero => "{value_zero,0}".into(),
            Bad::TooLarge(n) => format!("{{max_value_exceeded,{n}}}"),
            Bad::Type(t) => format!("{{unacceptable_type,{t}}}"),
            Bad::NotInteger(t) => format!("\"expected integer, got {t}\""),
            Bad::Text(s) => s.clone(),
        }
    }
}

fn int(v: &FieldValue) -> std::result::Result<i128, Bad> {
    match v {
        FieldValue::Timestamp(_) => Err(Bad::NotInteger("timestamp")),
        _ => v.as_i128().ok_or_else(|| Bad::NotInteger(type_name(v))),
    }
}

fn non_negative(v: &FieldValue) -> std::result::Result<u64, Bad> {
    let n = int(v)?;
    if n < 0 {
        return Err(Bad::Negative(n));
    }
    Ok(n as u64)
}

fn longstr(v: &FieldValue) -> std::result::Result<&[u8], Bad> {
    match v {
        FieldValue::LongStr(b) => Ok(b),
        other => Err(Bad::Type(type_name(other))),
    }
}

fn one_of<'a>(v: &FieldValue, known: &[&'a str], bad: &str) -> std::result::Result<&'a str, Bad> {
    let s = longstr(v)?;
    known.iter().find(|k| k.as_bytes() == s).copied().ok_or_else(|| Bad::Text(bad.to_owned()))
}

impl QueueArgs {
    /// Checks a declare's arguments and flags as RabbitMQ does; `rs` names the queue in errors
    /// (`queue 'q' in vhost '/'`).
    pub fn parse(flags: &QueueFlags, rs: &str) -> Result<Self> {
        let table = &flags.arguments;
        // Most declares have no arguments: a plain classic queue, nothing to check.
        if table.is_empty() {
            return Ok(QueueArgs::default());
        }
        let invalid =
            |key: &str, bad: Bad| ChannelError::precondition(format!("invalid arg '{key}' for {rs}: {}", bad.term()));
        let mut a = QueueArgs::default();
        if let Some(v) = table.get("x-queue-type") {
            a.kind = match longstr(v).map_err(|b| invalid("x-queue-type", b))? {
                b"classic" => QueueType::Classic,
                b"quorum" => QueueType::Quorum,
                other => {
                    // Streams are RabbitMQ's, not Warren's (yet): refused as an unknown type.
                    let name = String::from_utf8_lossy(other);
                    return Err(invalid("x-queue-type", Bad::Text(format!("\"unsupported queue type '{name}'\""))));
                }
            };
        }
        let foreign: &[&[&str]] = match a.kind {
            QueueType::Classic => &[QUORUM_ONLY, STREAM_ONLY],
            QueueType::Quorum => &[CLASSIC_ONLY, STREAM_ONLY],
        };
        let kind_name = match a.kind {
            QueueType::Classic => "rabbit_classic_queue",
            QueueType::Quorum => "rabbit_quorum_queue",
        };
        for (key, value) in &table.0 {
            let Some(key) = key.as_str() else { continue };
            if foreign.iter().any(|list| list.contains(&key)) {
                return Err(ChannelError::precondition(format!(
                    "invalid arg '{key}' for {rs} of queue type {kind_name}"
                )));
            }
            let checked: std::result::Result<(), Bad> = (|| {
                match key {
                    "x-message-ttl" => a.message_ttl = Some(non_negative(value)?),
                    "x-expires" => {
                        let n = non_negative(value)?;
                        if n == 0 {
                            return Err(Bad::Zero);
                        }
                        a.expires = Some(n);
                    }
                    "x-max-length" => a.max_length = Some(non_negative(value)?),
                    "x-max-length-bytes" => a.max_length_bytes = Some(non_negative(value)?),
                    "x-delivery-limit" => a.delivery_limit = Some(non_negative(value)?),
                    "x-max-in-memory-length" | "x-max-in-memory-bytes" | "x-stream-max-segment-size-bytes" => {
                        non_negative(value)?;
                    }
                    "x-quorum-initial-group-size" | "x-initial-cluster-size" if non_negative(value)? == 0 => {
                        return Err(Bad::Zero);
                    }
                    "x-max-priority" => {
                        let n = non_negative(value)?;
                        if n > 255 {
                            return Err(Bad::TooLarge(n as i128));
                        }
                        a.max_priority = Some(n as u8);
                    }
                    "x-overflow" => {
                        a.overflow_given = true;
                        a.overflow = match one_of(
                            value,
                            &["drop-head", "reject-publish", "reject-publish-dlx"],
                            "invalid_overflow",
                        )? {
                            "reject-publish" => Overflow::RejectPublish,
                            "reject-publish-dlx" => Overflow::RejectPublishDlx,
                            _ => Overflow::DropHead,
                        }
                    }
                    "x-dead-letter-exchange" => {
                        let name = longstr(value)?;
                        a.dead_letter_exchange = Some(String::from_utf8_lossy(name).into_owned());
                    }
                    "x-dead-letter-routing-key" => {
                        let key = longstr(value)?;
                        if table.get("x-dead-letter-exchange").is_none() {
                            return Err(Bad::Text("routing_key_but_no_dlx_defined".into()));
                        }
                        a.dead_letter_routing_key = crate::protocol::shortstr::ShortStr::copy_from_slice(key).ok();
                    }
                    "x-dead-letter-strategy" => {
                        one_of(value, &["at-most-once", "at-least-once"], "invalid_dlx_strategy")?;
                    }
                    "x-single-active-consumer" => match value {
                        FieldValue::Bool(b) => a.single_active_consumer = *b,
                        other => return Err(Bad::Type(type_name(other))),
                    },
                    "x-queue-mode" => {
                        let mode = longstr(value)?;
                        if mode != b"default" && mode != b"lazy" {
                            let m = String::from_utf8_lossy(mode);
                            return Err(Bad::Text(format!("\"unsupported queue mode '{m}'\"")));
                        }
                    }
                    "x-queue-version" => {
                        let n = int(value)?;
                        if n != 1 && n != 2 {
                            return Err(Bad::Text(format!("\"unsupported queue version '{n}'\"")));
                        }
                    }
                    _ => {}
                }
                Ok(())
            })();
            if let Err(bad) = checked {
                // RabbitMQ's channel checks the dead-letter exchange's type before the queue does.
                if key == "x-dead-letter-exchange"
                    && let Bad::Type(t) = bad
                {
                    return Err(ChannelError::precondition(format!(
                        "invalid type '{t}' for arg 'x-dead-letter-exchange' in {rs}"
                    )));
                }
                return Err(invalid(key, bad));
            }
        }
        if a.kind == QueueType::Quorum {
            let refused = [
                (!flags.durable, "non-durable"),
                (flags.exclusive, "exclusive-owner"),
                (flags.auto_delete, "auto-delete"),
            ];
            if let Some((_, property)) = refused.iter().find(|(bad, _)| *bad) {
                return Err(ChannelError::precondition(format!("invalid property '{property}' for {rs}")));
            }
            if a.overflow == Overflow::RejectPublishDlx {
                return Err(invalid("x-overflow", Bad::Text("invalid_overflow".into())));
            }
        }
        Ok(a)
    }

    pub fn has_limit(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

/// basic.consume's `x-priority` (0 without one), checked as RabbitMQ checks consume arguments: an
/// integer, else 406 naming the queue `rs()` gives.
pub fn consumer_priority(args: &crate::protocol::types::FieldTable, rs: impl Fn() -> String) -> Result<i32> {
    let Some(v) = args.get("x-priority") else { return Ok(0) };
    let n = int(v)
        .map_err(|bad| ChannelError::precondition(format!("invalid arg 'x-priority' for {}: {}", rs(), bad.term())))?;
    Ok(n.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32)
}

/// The `expiration` property of a message, as RabbitMQ parses it: a non-negative integer of ms.
/// Its errors are RabbitMQ's (`invalid expiration 'abc': no_integer`), a 406 on the channel.
pub fn parse_expiration(raw: &[u8]) -> Result<u64> {
    let text = String::from_utf8_lossy(raw);
    let bad = |why: String| ChannelError::precondition(format!("invalid expiration '{text}': {why}"));
    let (sign, digits) = match raw.first() {
        Some(b'-') => (-1i128, raw.get(1..).unwrap_or_default()),
        Some(b'+') => (1, raw.get(1..).unwrap_or_default()),
        _ => (1, raw),
    };
    let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
    if end == 0 {
        return Err(bad("no_integer".into()));
    }
    let (number, rest) = digits.split_at(end);
    let n = std::str::from_utf8(number)
        .ok()
        .and_then(|s| s.parse::<i128>().ok())
        .ok_or_else(|| bad("no_integer".into()))?;
    if !rest.is_empty() {
        return Err(bad(format!("{{leftover_string,\"{}\"}}", String::from_utf8_lossy(rest))));
    }
    let n = sign * n;
    if n < 0 {
        return Err(bad(format!("{{value_negative,{n}}}")));
    }
    Ok(u64::try_from(n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::types::FieldTable;

    fn parse(args: &[(&'static str, FieldValue)], durable: bool) -> Result<QueueArgs> {
        let mut t = FieldTable::default();
        for (k, v) in args {
            t.insert(*k, v.clone());
        }
        let flags = QueueFlags { durable, exclusive: false, auto_delete: false, arguments: t };
        QueueArgs::parse(&flags, "queue 'q' in vhost '/'")
    }

    fn err(args: &[(&'static str, FieldValue)]) -> String {
        let e = parse(args, false).unwrap_err();
        assert_eq!(e.reply_code(), 406);
        e.into_text()
    }

    /// Texts as RabbitMQ 3.10.8 answered them (measured with pika).
    #[test]
    fn refusals_read_as_rabbitmq_writes_them() {
        let q = "for queue 'q' in vhost '/'";
        let s = FieldValue::str;
        let cases = [
            (("x-message-ttl", FieldValue::I32(-1)), format!("invalid arg 'x-message-ttl' {q}: {{value_negative,-1}}")),
            (
                ("x-message-ttl", s("abc")),
                format!("invalid arg 'x-message-ttl' {q}: \"expected integer, got longstr\""),
            ),
            (("x-expires", FieldValue::I32(0)), format!("invalid arg 'x-expires' {q}: {{value_zero,0}}")),
            (
                ("x-max-priority", FieldValue::I32(256)),
                format!("invalid arg 'x-max-priority' {q}: {{max_value_exceeded,256}}"),
            ),
            (("x-overflow", s("foo")), format!("invalid arg 'x-overflow' {q}: invalid_overflow")),
            (
                ("x-overflow", FieldValue::I32(5)),
                format!("invalid arg 'x-overflow' {q}: {{unacceptable_type,signedint}}"),
            ),
            (
                ("x-single-active-consumer", FieldValue::I32(1)),
                format!("invalid arg 'x-single-active-consumer' {q}: {{unacceptable_type,signedint}}"),
            ),
            (
                ("x-max-length-bytes", FieldValue::Bool(true)),
                format!("invalid arg 'x-max-length-bytes' {q}: \"expected integer, got bool\""),
            ),
            (("x-queue-type", s("foo")), format!("invalid arg 'x-queue-type' {q}: \"unsupported queue type 'foo'\"")),
            (
                ("x-delivery-limit", FieldValue::I32(5)),
                format!("invalid arg 'x-delivery-limit' {q} of queue type rabbit_classic_queue"),
            ),
            (("x-queue-mode", s("bad")), format!("invalid arg 'x-queue-mode' {q}: \"unsupported queue mode 'bad'\"")),
            (
                ("x-dead-letter-exchange", FieldValue::I32(5)),
                "invalid type 'signedint' for arg 'x-dead-letter-exchange' in queue 'q' in vhost '/'".into(),
            ),
            (
                ("x-dead-letter-routing-key", s("k")),
                format!("invalid arg 'x-dead-letter-routing-key' {q}: routing_key_but_no_dlx_defined"),
            ),
        ];
        for ((k, v), text) in cases {
            assert_eq!(err(&[(k, v)]), format!("PRECONDITION_FAILED - {text}"));
        }
    }

    #[test]
    fn valid_arguments_set_the_behaviour() {
        let a = parse(
            &[
                ("x-message-ttl", FieldValue::I64(4294967296)),
                ("x-max-length", FieldValue::U8(3)),
                ("x-overflow", FieldValue::str("reject-publish-dlx")),
                ("x-dead-letter-exchange", FieldValue::str("dlx")),
                ("x-max-priority", FieldValue::I32(0)),
                ("x-queue-mode", FieldValue::str("lazy")),
                ("x-anything-else", FieldValue::Void),
            ],
            false,
        )
        .unwrap();
        assert_eq!(a.message_ttl, Some(4294967296));
        assert_eq!((a.max_length, a.overflow), (Some(3), Overflow::RejectPublishDlx));
        assert_eq!((a.dead_letter_exchange.as_deref(), a.max_priority), (Some("dlx"), Some(0)));
    }

    #[test]
    fn quorum_queues_are_durable_shared_and_not_auto_deleted() {
        let qq = [("x-queue-type", FieldValue::str("quorum"))];
        assert_eq!(
            parse(&qq, false).unwrap_err().into_text(),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'q' in vhost '/'"
        );
        assert_eq!(parse(&qq, true).unwrap().kind, QueueType::Quorum);
        let prio = [("x-queue-type", FieldValue::str("quorum")), ("x-max-priority", FieldValue::I32(5))];
        assert!(parse(&prio, true).unwrap_err().text().contains("of queue type rabbit_quorum_queue"));
    }

    #[test]
    fn expiration_parses_as_rabbitmq_does() {
        assert_eq!(parse_expiration(b"0").unwrap(), 0);
        assert_eq!(parse_expiration(b"4294967296").unwrap(), 4294967296);
        let text = |raw: &[u8]| parse_expiration(raw).unwrap_err().into_text();
        assert_eq!(text(b"-1"), "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}");
        assert_eq!(text(b"abc"), "PRECONDITION_FAILED - invalid expiration 'abc': no_integer");
        assert_eq!(text(b""), "PRECONDITION_FAILED - invalid expiration '': no_integer");
        assert_eq!(text(b"1.5"), "PRECONDITION_FAILED - invalid expiration '1.5': {leftover_string,\".5\"}");
    }
}
