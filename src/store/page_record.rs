//! A page file's records, as appended and read back (little-endian):
//!
//! ```text
//! u32 length of what follows | u64 id | u32 log segment | u8 redelivered | short exchange
//! | short routing key | u32 properties length | properties | body
//! ```

use bytes::{BufMut, Bytes};

use crate::broker::message::Message;
use crate::broker::paging::PagedMessage;
use crate::protocol::codec::put_prefixed;

use super::record::{Fields, put_shortstr};

pub(super) fn put_record(out: &mut Vec<u8>, id: u64, seg: u32, redelivered: bool, msg: &Message) {
    let fields = |out: &mut Vec<u8>| {
        out.put_u64_le(id);
        out.put_u32_le(seg);
        out.put_u8(redelivered as u8);
        put_shortstr(out, &msg.exchange);
        put_shortstr(out, &msg.routing_key);
        out.put_u32_le(msg.properties.len() as u32);
        out.put_slice(&msg.properties);
        out.put_slice(&msg.body);
    };
    put_prefixed(out, fields, |written| (written.len() as u32).to_le_bytes());
}

/// The whole records at the front of `data`, and how many bytes they took. Stops before a record
/// that does not decode (page files are written by this process and never torn, so only a fault
/// of the disk or of memory makes one).
pub(super) fn parse(data: &[u8]) -> (Vec<PagedMessage>, usize) {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some((len, after)) = rest.split_first_chunk::<4>()
        && let Some((rec, after)) = after.split_at_checked(u32::from_le_bytes(*len) as usize)
        && let Some(msg) = decode(rec)
    {
        out.push(msg);
        rest = after;
    }
    (out, data.len() - rest.len())
}

fn decode(rec: &[u8]) -> Option<PagedMessage> {
    let mut f = Fields(rec);
    let (id, seg, redelivered) = (f.u64()?, f.u32()?, f.u8()? != 0);
    let (exchange, routing_key, properties) = (f.shortstr()?, f.shortstr()?, f.long()?);
    let body = Bytes::copy_from_slice(f.0);
    Some(PagedMessage { id, seg, redelivered, msg: Message { exchange, routing_key, properties, body } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::page::tests::msg;

    // A record that did not decode panicked the shard (an `expect` in `parse`), and a short read
    // panicked it too (`data[..4]`); `parse` now stops before either, and a page-in waits for
    // the record as for a read that fails.
    #[test]
    fn parse_stops_before_a_record_that_does_not_decode() {
        let mut data = Vec::new();
        put_record(&mut data, 1, 0, false, &msg(1, 10));
        let first = data.len();
        put_record(&mut data, 2, 0, false, &msg(2, 10));
        // The second record's exchange length (after its size, id, segment and flag) now runs
        // past the record's end.
        data[first + 4 + 8 + 4 + 1] = 255;
        let (msgs, used) = parse(&data);
        assert_eq!(msgs.iter().map(|p| p.id).collect::<Vec<_>>(), vec![1]);
        assert_eq!(used, first);
        assert_eq!(parse(&data[..3]).1, 0);
    }
}
