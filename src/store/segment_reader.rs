//! Reading one segment of a message log record by record, through a small buffer: recovery never
//! holds a whole segment (64 MiB by default) in memory, only the record it is looking at.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use super::record::{self, HEADER, RecordRef};

/// Bytes read from the file at a time.
const BUFFER: usize = 256 << 10;

pub struct SegmentReader {
    file: BufReader<File>,
    len: u64,
    /// Offset of the next record: once `next_record` returns `None`, where the readable part ends.
    at: u64,
    payload: Vec<u8>,
    done: bool,
}

impl SegmentReader {
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self { file: BufReader::with_capacity(BUFFER, file), len, at: 0, payload: Vec::new(), done: false })
    }

    /// The file's length when it was opened.
    pub fn file_len(&self) -> u64 {
        self.len
    }

    /// Where the next record starts; after the last good one, where the readable part ends (the
    /// file's length, or the start of a torn or corrupt record).
    pub fn offset(&self) -> u64 {
        self.at
    }

    /// The next whole, valid record and its offset; `None` at the end of the readable part. A
    /// record whose length runs past the end, whose CRC does not match or that does not decode
    /// ends it, as in `record::read_all`.
    pub fn next_record(&mut self) -> io::Result<Option<(u64, RecordRef<'_>)>> {
        if self.done || self.len - self.at < HEADER as u64 {
            self.done = true;
            return Ok(None);
        }
        let mut h = [0u8; HEADER];
        self.file.read_exact(&mut h)?;
        let (len, crc) = record::header(&h);
        // Checked before reading: a corrupt length must not make a huge buffer.
        if (self.len - self.at - HEADER as u64) < len as u64 {
            self.done = true;
            return Ok(None);
        }
        self.payload.clear();
        self.payload.resize(len, 0);
        self.file.read_exact(&mut self.payload)?;
        if crc32fast::hash(&self.payload) != crc {
            self.done = true;
            return Ok(None);
        }
        let Some(rec) = record::decode_ref(&self.payload) else {
            self.done = true;
            return Ok(None);
        };
        let offset = self.at;
        self.at += (HEADER + len) as u64;
        Ok(Some((offset, rec)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use bytes::Bytes;

    #[test]
    fn reads_what_read_all_reads_at_every_cut() {
        let dir = std::env::temp_dir().join(format!("warren-segreader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("1.seg");
        let mut data = Vec::new();
        for i in 0..20u64 {
            let m = Message {
                exchange: "x".into(),
                routing_key: "k".into(),
                properties: Bytes::from_static(&[0x10, 0, 2]),
                // One body larger than the read buffer.
                body: Bytes::from(vec![i as u8; if i == 7 { BUFFER * 2 + 5 } else { i as usize * 3 }]),
            };
            record::put_message(&mut data, "/", "q", i, &m);
            record::put_ack(&mut data, "/", "q", &[i]);
        }
        let cuts = (0..data.len()).step_by(97).chain([data.len() - 1, data.len()]);
        for cut in cuts {
            std::fs::write(&path, &data[..cut]).unwrap();
            let (want, good) = record::read_all(&data[..cut]);
            let mut r = SegmentReader::open(&path).unwrap();
            let mut got = 0;
            while let Some((_, rec)) = r.next_record().unwrap() {
                let (kind, id) = match (&want[got], rec) {
                    (record::Record::Message { id, body, .. }, RecordRef::Message(m)) => {
                        assert_eq!(body.as_ref(), m.body);
                        ("message", (*id, m.id))
                    }
                    (record::Record::Ack { ids, .. }, RecordRef::Ack { ids: i, .. }) => {
                        ("ack", (ids[0], record::ack_ids(i).next().unwrap()))
                    }
                    (w, g) => panic!("cut {cut}: {w:?} vs {g:?}"),
                };
                assert_eq!(id.0, id.1, "{kind} at cut {cut}");
                got += 1;
            }
            assert_eq!((got, r.offset()), (want.len(), good as u64), "cut {cut}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
