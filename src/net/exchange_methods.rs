//! The exchange class: declare, delete, bind, unbind. All are routing-table changes, applied on
//! every shard through the coordinator before the -ok is sent.

use std::rc::Rc;

use crate::broker::access::{Perm, Resource};
use crate::broker::routing::{Dest, MetaOp};
use crate::protocol::Method;
use crate::protocol::methods::exchange;
use crate::protocol::reply::Result;
use crate::protocol::types::FieldTable;

use super::connection::Conn;

impl Conn {
    pub async fn exchange_declare(self: &Rc<Self>, ch: u16, m: exchange::Declare) -> Result<()> {
        let vhost = self.st.borrow().vhost.to_string();
        let name = m.exchange.clone();
        let op = MetaOp::DeclareExchange {
            vhost,
            name: m.exchange,
            kind: m.kind,
            passive: m.passive,
            durable: m.durable,
            auto_delete: m.auto_delete,
            internal: m.internal,
            arguments: m.arguments,
        };
        if !m.passive {
            self.permit(Perm::Configure, Resource::Exchange(&name))?;
        }
        if m.passive {
            // A passive declare changes nothing: this shard's copy answers it.
            self.shard.routes.borrow_mut().apply(&op)?;
        } else {
            self.shard.change_routes(op).await?;
        }
        if !m.nowait {
            self.send_method(ch, &Method::ExchangeDeclareOk(exchange::DeclareOk {}));
        }
        Ok(())
    }

    pub async fn exchange_delete(self: &Rc<Self>, ch: u16, m: exchange::Delete) -> Result<()> {
        self.permit(Perm::Configure, Resource::Exchange(&m.exchange))?;
        let vhost = self.st.borrow().vhost.to_string();
        self.shard.change_routes(MetaOp::DeleteExchange { vhost, name: m.exchange, if_unused: m.if_unused }).await?;
        if !m.nowait {
            self.send_method(ch, &Method::ExchangeDeleteOk(exchange::DeleteOk {}));
        }
        Ok(())
    }

    pub async fn exchange_bind(self: &Rc<Self>, ch: u16, m: exchange::Bind) -> Result<()> {
        self.exchange_binding(m.destination, m.source, m.routing_key, m.arguments, true).await?;
        if !m.nowait {
            self.send_method(ch, &Method::ExchangeBindOk(exchange::BindOk {}));
        }
        Ok(())
    }

    pub async fn exchange_unbind(self: &Rc<Self>, ch: u16, m: exchange::Unbind) -> Result<()> {
        self.exchange_binding(m.destination, m.source, m.routing_key, m.arguments, false).await?;
        if !m.nowait {
            self.send_method(ch, &Method::ExchangeUnbindOk(exchange::UnbindOk {}));
        }
        Ok(())
    }

    /// exchange.bind and unbind: write on the destination, read on the source (RabbitMQ), then the
    /// change on every shard.
    async fn exchange_binding(
        self: &Rc<Self>,
        destination: String,
        source: String,
        key: String,
        args: FieldTable,
        bind: bool,
    ) -> Result<()> {
        self.permit(Perm::Write, Resource::Exchange(&destination))?;
        self.permit(Perm::Read, Resource::Exchange(&source))?;
        let vhost = self.st.borrow().vhost.to_string();
        let dest = Dest::Exchange(destination.as_str().into());
        let op = if bind {
            MetaOp::Bind { vhost, source, dest, key, args }
        } else {
            MetaOp::Unbind { vhost, source, dest, key, args }
        };
        self.shard.change_routes(op).await
    }
}
