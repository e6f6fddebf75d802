//! What outlives the process: each shard's message log (persistent messages of durable queues)
//! and the durable definitions.

pub mod definitions_file;
pub mod id_runs;
pub mod log;
pub mod page;
mod page_record;
pub mod record;
pub mod recovery;
pub mod relayout;
pub mod replay;
pub mod segment_reader;
