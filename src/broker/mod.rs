//! The broker's data: messages, queues and the routing table. Pure state machines; the shard that
//! owns them drives them and moves their output over the mesh.

pub mod access;
pub mod dead_letter;
pub mod definitions;
pub mod delivery;
pub mod exchange;
pub mod limits;
pub mod message;
pub mod paging;
pub mod policy;
pub mod queue;
pub mod queues;
pub mod routing;
pub mod stats;
