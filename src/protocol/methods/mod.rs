//! The method table of AMQP 0-9-1 with RabbitMQ's extensions (basic.nack, confirm, exchange.bind,
//! connection.blocked and update-secret). One file per class declares its argument structs; the
//! table below is the one place that gives each its (class, method) id.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{Reader, Writer};
use super::reply::ConnectionError;

/// Decoding fails only with connection errors: the stream cannot be trusted past garbage.
type Result<T> = std::result::Result<T, ConnectionError>;

/// Declares a method's argument struct in the spec's field order; `Field` says how each is coded.
macro_rules! method {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name { $(pub $field: $ty),* }

        impl $name {
            #[allow(unused_variables)]
            pub fn decode(r: &mut $crate::protocol::codec::Reader) -> std::result::Result<Self, $crate::protocol::reply::ConnectionError> {
                Ok(Self { $($field: $crate::protocol::codec::Field::read(r)?),* })
            }

            #[allow(unused_variables)]
            pub fn encode(&self, w: &mut $crate::protocol::codec::Writer) {
                $($crate::protocol::codec::Field::write(&self.$field, w);)*
            }
        }
    };
}

pub mod access;
pub mod basic;
pub mod channel;
pub mod confirm;
pub mod connection;
pub mod exchange;
pub mod queue;
pub mod tx;

macro_rules! method_table {
    ($($variant:ident($ty:ty) = $class:literal, $id:literal;)*) => {
        /// Every method Warren can receive or send.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Method { $($variant($ty)),* }

        impl Method {
            /// Decodes a method frame payload. Unknown ids are 540 NOT_IMPLEMENTED.
            pub fn decode(payload: Bytes) -> Result<Method> {
                let mut r = Reader::new(payload);
                let class = r.u16()?;
                let id = r.u16()?;
                let method = match (class, id) {
                    $(($class, $id) => Method::$variant(<$ty>::decode(&mut r)?),)*
                    _ => {
                        return Err(ConnectionError::not_implemented(format!(
                            "unknown method class {class} id {id}"
                        )).on((class, id)))
                    }
                };
                Ok(method)
            }

            /// Appends class id, method id and arguments.
            pub fn encode(&self, buf: &mut BytesMut) {
                let (class, id) = self.id();
                buf.put_u16(class);
                buf.put_u16(id);
                let mut w = Writer::new(buf);
                match self { $(Method::$variant(m) => m.encode(&mut w)),* }
            }

            /// (class id, method id).
            pub fn id(&self) -> (u16, u16) {
                match self { $(Method::$variant(_) => ($class, $id)),* }
            }

            /// Every method with default arguments, for tests that walk the table.
            pub fn all_defaults() -> Vec<Method> {
                vec![$(Method::$variant(<$ty>::default())),*]
            }
        }
    };
}

method_table! {
    ConnectionStart(connection::Start) = 10, 10;
    ConnectionStartOk(connection::StartOk) = 10, 11;
    ConnectionSecure(connection::Secure) = 10, 20;
    ConnectionSecureOk(connection::SecureOk) = 10, 21;
    ConnectionTune(connection::Tune) = 10, 30;
    ConnectionTuneOk(connection::TuneOk) = 10, 31;
    ConnectionOpen(connection::Open) = 10, 40;
    ConnectionOpenOk(connection::OpenOk) = 10, 41;
    ConnectionClose(connection::Close) = 10, 50;
    ConnectionCloseOk(connection::CloseOk) = 10, 51;
    ConnectionBlocked(connection::Blocked) = 10, 60;
    ConnectionUnblocked(connection::Unblocked) = 10, 61;
    ConnectionUpdateSecret(connection::UpdateSecret) = 10, 70;
    ConnectionUpdateSecretOk(connection::UpdateSecretOk) = 10, 71;
    ChannelOpen(channel::Open) = 20, 10;
    ChannelOpenOk(channel::OpenOk) = 20, 11;
    ChannelFlow(channel::Flow) = 20, 20;
    ChannelFlowOk(channel::FlowOk) = 20, 21;
    ChannelClose(channel::Close) = 20, 40;
    ChannelCloseOk(channel::CloseOk) = 20, 41;
    AccessRequest(access::Request) = 30, 10;
    AccessRequestOk(access::RequestOk) = 30, 11;
    ExchangeDeclare(exchange::Declare) = 40, 10;
    ExchangeDeclareOk(exchange::DeclareOk) = 40, 11;
    ExchangeDelete(exchange::Delete) = 40, 20;
    ExchangeDeleteOk(exchange::DeleteOk) = 40, 21;
    ExchangeBind(exchange::Bind) = 40, 30;
    ExchangeBindOk(exchange::BindOk) = 40, 31;
    ExchangeUnbind(exchange::Unbind) = 40, 40;
    ExchangeUnbindOk(exchange::UnbindOk) = 40, 51;
    QueueDeclare(queue::Declare) = 50, 10;
    QueueDeclareOk(queue::DeclareOk) = 50, 11;
    QueueBind(queue::Bind) = 50, 20;
    QueueBindOk(queue::BindOk) = 50, 21;
    QueuePurge(queue::Purge) = 50, 30;
    QueuePurgeOk(queue::PurgeOk) = 50, 31;
    QueueDelete(queue::Delete) = 50, 40;
    QueueDeleteOk(queue::DeleteOk) = 50, 41;
    QueueUnbind(queue::Unbind) = 50, 50;
    QueueUnbindOk(queue::UnbindOk) = 50, 51;
    BasicQos(basic::Qos) = 60, 10;
    BasicQosOk(basic::QosOk) = 60, 11;
    BasicConsume(basic::Consume) = 60, 20;
    BasicConsumeOk(basic::ConsumeOk) = 60, 21;
    BasicCancel(basic::Cancel) = 60, 30;
    BasicCancelOk(basic::CancelOk) = 60, 31;
    BasicPublish(basic::Publish) = 60, 40;
    BasicReturn(basic::Return) = 60, 50;
    BasicDeliver(basic::Deliver) = 60, 60;
    BasicGet(basic::Get) = 60, 70;
    BasicGetOk(basic::GetOk) = 60, 71;
    BasicGetEmpty(basic::GetEmpty) = 60, 72;
    BasicAck(basic::Ack) = 60, 80;
    BasicReject(basic::Reject) = 60, 90;
    BasicRecoverAsync(basic::RecoverAsync) = 60, 100;
    BasicRecover(basic::Recover) = 60, 110;
    BasicRecoverOk(basic::RecoverOk) = 60, 111;
    BasicNack(basic::Nack) = 60, 120;
    ConfirmSelect(confirm::Select) = 85, 10;
    ConfirmSelectOk(confirm::SelectOk) = 85, 11;
    TxSelect(tx::Select) = 90, 10;
    TxSelectOk(tx::SelectOk) = 90, 11;
    TxCommit(tx::Commit) = 90, 20;
    TxCommitOk(tx::CommitOk) = 90, 21;
    TxRollback(tx::Rollback) = 90, 30;
    TxRollbackOk(tx::RollbackOk) = 90, 31;
}

impl Method {
    /// Methods followed by a content header and body (spec 2.3.5.2).
    pub fn has_content(&self) -> bool {
        matches!(
            self,
            Method::BasicPublish(_) | Method::BasicReturn(_) | Method::BasicDeliver(_) | Method::BasicGetOk(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_round_trips() {
        for m in Method::all_defaults() {
            let mut buf = BytesMut::new();
            m.encode(&mut buf);
            let back = Method::decode(buf.freeze()).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn unknown_method_is_540() {
        let err = Method::decode(Bytes::from_static(&[0, 60, 0, 99])).unwrap_err();
        assert_eq!(err.reply_code(), 540);
        assert_eq!(err.method(), (60, 99));
    }

    #[test]
    fn truncated_arguments_are_501() {
        let err = Method::decode(Bytes::from_static(&[0, 50, 0, 10, 0])).unwrap_err();
        assert_eq!(err.reply_code(), 501);
    }

    #[test]
    fn publish_keeps_a_key_that_is_not_utf8_and_names_must_be_utf8() {
        // Regression (issue 14): short strings were decoded lossily; a routing key of 253 'a' and
        // two 0xFF grew to 759 bytes of text and came out of the broker as another key.
        let mut key = vec![b'a'; 253];
        key.extend([0xFF, 0xFF]);
        let mut frame = vec![0, 60, 0, 40, 0, 0, 0, 255];
        frame.extend(&key);
        frame.push(0);
        let Method::BasicPublish(p) = Method::decode(Bytes::from(frame.clone())).unwrap() else { panic!() };
        assert_eq!(p.routing_key.as_bytes(), &key[..]);
        let mut again = BytesMut::new();
        Method::BasicPublish(p).encode(&mut again);
        assert_eq!(again, frame);
        // queue.declare of b"q\xff": RabbitMQ's FRAME_ERROR for a name that is not UTF-8.
        let declare = Bytes::from_static(&[0, 50, 0, 10, 0, 0, 2, b'q', 0xFF, 0, 0, 0, 0, 0]);
        let err = Method::decode(declare).unwrap_err();
        assert_eq!((err.reply_code(), err.text()), (501, "FRAME_ERROR - Malformed UTF-8 in shortstr"));
    }

    #[test]
    fn bits_of_queue_declare_pack_into_one_octet() {
        let m = Method::QueueDeclare(queue::Declare {
            queue: "q".into(),
            durable: true,
            auto_delete: true,
            ..Default::default()
        });
        let mut buf = BytesMut::new();
        m.encode(&mut buf);
        // class, method, ticket, "q", flags (durable=bit1, auto_delete=bit3), empty table
        assert_eq!(&buf[..], &[0, 50, 0, 10, 0, 0, 1, b'q', 0b0000_1010, 0, 0, 0, 0]);
    }
}
