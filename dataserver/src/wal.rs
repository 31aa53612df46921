//! Write-ahead log: what makes a commit durable.
//!
//! Why: a durable redb commit rewrites every B-tree page a batch touched (a few hundred scattered
//! pages), which costs milliseconds. Appending the batch to a log is one sequential write and one
//! `fdatasync`. So each batch is appended here and synced *before* it is applied to redb (with a
//! non-durable commit, visible at once to readers in this process) and before anyone is answered.
//! redb is made durable only at checkpoints; each redb transaction records the log sequence number
//! (LSN) of its batch, so after a crash redb is back at its last checkpoint and knows exactly
//! which batches of the log to apply again.
//!
//! Format: segment files `<first lsn, 20 digits>.wal`, each a sequence of frames
//! `[payload length: u32 LE][CRC-32 of payload: u32 LE][payload: JSON of one batch]`.
//! A frame that is short or fails its checksum ends its segment: it is the tail of a write the
//! crash interrupted, which was never synced and so never acknowledged.
//!
//! Segments are recycled, as PostgreSQL recycles its WAL files: at a checkpoint the segment just
//! checkpointed is renamed to be the next one and written over from its start, instead of a new,
//! empty file. Why: `fdatasync` on a file that grows must also make its new size durable — ext4
//! writes the inode synchronously (or, journaling, commits its journal) on every sync; over
//! blocks already written it flushes the data alone (~40 % less wall time and CPU per sync,
//! measured here: 230 → 139 µs, 75 → 52 µs). The frames left from the segment's previous use
//! are told apart by their batch numbers: a segment's frames number on from its first LSN, so
//! the first frame that does not is where the segment's own log ends.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::StoreError;
use dataserver_api::CommitRequest;

/// Largest frame a reader accepts; anything larger is corruption, not a batch.
pub const WAL_FRAME_BYTES_MAX: usize = 256 << 20;
const FRAME_HEADER_BYTES: usize = 8;

/// One commit as logged: enough to apply it again identically.
#[derive(Debug, Serialize, Deserialize)]
pub struct WalCommit<R> {
    pub business: u32,
    pub fingerprint: String,
    pub request: R,
}

/// One batch as logged. `R` is `&CommitRequest` when writing (no copies) and `CommitRequest`
/// when reading; both give the same JSON.
#[derive(Debug, Serialize, Deserialize)]
pub struct WalBatch<R> {
    pub lsn: u64,
    pub at_ms: u64,
    pub at: String,
    pub commits: Vec<WalCommit<R>>,
}

pub type OwnedBatch = WalBatch<CommitRequest>;

#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment_bytes: u64,
    /// The first LSN of the segment being written.
    first: u64,
    /// A segment whose every batch the store holds durably, kept to be written over by the next
    /// [`Wal::roll`] (recycled: see the module's comment).
    spare: Option<PathBuf>,
}

fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

fn io(e: std::io::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

/// Segments in LSN order.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let first =
            path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".wal")).and_then(|n| n.parse().ok());
        if let Some(first) = first {
            out.push((first, path));
        }
    }
    out.sort();
    Ok(out)
}

/// Every intact frame of the segment starting at `first_lsn`, in order; stops at the first torn
/// or corrupt frame (then `true`), or at the first left from the segment's previous use (a frame
/// whose batch does not follow on: the log's clean end).
fn read_segment(path: &Path, first_lsn: u64) -> Result<(Vec<OwnedBatch>, bool), StoreError> {
    let mut bytes = Vec::new();
    File::open(path).map_err(io)?.read_to_end(&mut bytes).map_err(io)?;
    let mut batches = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(header) = bytes.get(at..at + FRAME_HEADER_BYTES) else { return Ok((batches, true)) };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        if len > WAL_FRAME_BYTES_MAX {
            return Ok((batches, true));
        }
        let Some(payload) = bytes.get(at + FRAME_HEADER_BYTES..at + FRAME_HEADER_BYTES + len) else {
            return Ok((batches, true));
        };
        if crc32fast::hash(payload) != crc {
            return Ok((batches, true));
        }
        match serde_json::from_slice::<OwnedBatch>(payload) {
            Ok(b) if b.lsn == first_lsn + batches.len() as u64 => batches.push(b),
            Ok(_) => return Ok((batches, false)),
            Err(_) => return Ok((batches, true)),
        }
        at += FRAME_HEADER_BYTES + len;
    }
    Ok((batches, false))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)
}

impl Wal {
    /// Reads the log in `dir` and returns the batches after `applied_lsn`, in order, checking that
    /// they follow on without a gap. The log is then reopened with [`Wal::start`] once those
    /// batches are applied and checkpointed.
    pub fn recover(dir: &Path, applied_lsn: u64) -> Result<Vec<OwnedBatch>, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut out: Vec<OwnedBatch> = Vec::new();
        let segs = segments(dir)?;
        for (i, (first, path)) in segs.iter().enumerate() {
            let (batches, torn) = read_segment(path, *first)?;
            if torn {
                // After a crash, expected: a write it cut short (never acknowledged), or the middle
                // of a frame a recycled segment held before, which can no longer be told apart.
                tracing::warn!(
                    segment = %path.display(),
                    last_segment = i + 1 == segs.len(),
                    "write-ahead log ends in an unreadable frame (a write cut short, or a recycled segment's old bytes)"
                );
            }
            out.extend(batches.into_iter().filter(|b| b.lsn > applied_lsn));
        }
        for (expected, b) in (applied_lsn + 1..).zip(out.iter()) {
            if b.lsn != expected {
                return Err(StoreError::Corrupt(format!(
                    "write-ahead log has a gap: expected batch {expected}, found {}; refusing to start rather than lose acknowledged commits",
                    b.lsn
                )));
            }
        }
        Ok(out)
    }

    /// Starts the segment for batches after `checkpoint_lsn`: the newest older segment renamed
    /// (recycled, see the module's note), or a new file when there is none; every other older
    /// one is deleted. Only call once redb is durable up to `checkpoint_lsn`: everything in the
    /// older segments is then in redb.
    pub fn start(dir: &Path, checkpoint_lsn: u64) -> Result<Wal, StoreError> {
        std::fs::create_dir_all(dir).map_err(io)?;
        let first = checkpoint_lsn + 1;
        let path = dir.join(segment_name(first));
        let mut older: Vec<(u64, PathBuf)> = segments(dir)?.into_iter().filter(|(f, _)| *f < first).collect();
        let recycled = older.pop();
        for (_, old) in &older {
            std::fs::remove_file(old).map_err(io)?;
        }
        let file = match recycled {
            // Its frames number below `first`: read as the end of this segment until written over.
            Some((_, old)) => {
                std::fs::rename(&old, &path).map_err(io)?;
                OpenOptions::new().write(true).open(&path).map_err(io)?
            }
            None => OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io)?,
        };
        file.sync_all().map_err(io)?;
        sync_dir(dir)?;
        Ok(Wal { dir: dir.to_path_buf(), file, segment_bytes: 0, first, spare: None })
    }

    /// Goes on in a new segment starting at `first`, the next batch's LSN, and keeps the ones
    /// before it: a checkpoint of the batches up to here is being written meanwhile, and until
    /// it is durable a crash needs them ([`Wal::release`] lets them go).
    pub fn roll(&mut self, first: u64) -> Result<(), StoreError> {
        let path = self.dir.join(segment_name(first));
        let file = match self.spare.take() {
            Some(spare) => {
                std::fs::rename(&spare, &path).map_err(io)?;
                OpenOptions::new().write(true).open(&path).map_err(io)?
            }
            None => OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(io)?,
        };
        file.sync_all().map_err(io)?;
        sync_dir(&self.dir)?;
        (self.file, self.segment_bytes, self.first) = (file, 0, first);
        Ok(())
    }

    /// The store holds every batch before the current segment durably: the newest older
    /// segment is kept as the next one to write over, the rest are deleted.
    pub fn release(&mut self) -> Result<(), StoreError> {
        let mut older: Vec<(u64, PathBuf)> =
            segments(&self.dir)?.into_iter().filter(|(f, _)| *f < self.first).collect();
        if self.spare.is_none() {
            self.spare = older.pop().map(|(_, p)| p);
        }
        for (_, old) in &older {
            if Some(old) != self.spare.as_ref() {
                std::fs::remove_file(old).map_err(io)?;
            }
        }
        Ok(())
    }

    /// Appends one batch and syncs it. On error the log's tail is unknown: the caller must stop.
    pub fn append(&mut self, batch: &WalBatch<&CommitRequest>) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(batch)?;
        let len = u32::try_from(payload.len()).ok().filter(|l| (*l as usize) <= WAL_FRAME_BYTES_MAX);
        let len = len.ok_or_else(|| StoreError::Io("batch too large for one log frame".into()))?;
        let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        self.file.write_all(&frame).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.segment_bytes += frame.len() as u64;
        Ok(())
    }

    /// Bytes in the current segment: what a restart would replay.
    pub fn segment_bytes(&self) -> u64 {
        self.segment_bytes
    }

    /// After a durable checkpoint at `checkpoint_lsn`: a fresh segment, older ones deleted.
    pub fn rotate(&mut self, checkpoint_lsn: u64) -> Result<(), StoreError> {
        *self = Wal::start(&self.dir, checkpoint_lsn)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lsn: u64, req: &CommitRequest) -> WalBatch<&CommitRequest> {
        WalBatch {
            lsn,
            at_ms: lsn,
            at: "t".into(),
            commits: vec![WalCommit { business: 1, fingerprint: "f".into(), request: req }],
        }
    }

    /// A log holding batches 1, 2 and 3 in one segment; returns its folder and the segment.
    fn three_batches() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let req = CommitRequest::new("x");
        let mut wal = Wal::start(dir.path(), 0).unwrap();
        for lsn in 1..=3 {
            wal.append(&batch(lsn, &req)).unwrap();
        }
        let path = dir.path().join(segment_name(1));
        (dir, path)
    }

    #[test]
    fn appends_recover_and_a_torn_tail_is_ignored() {
        let (dir, path) = three_batches();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[200, 0, 0, 0, 1, 2, 3, 4, b'{']).unwrap(); // a frame cut short by a crash
        let got = Wal::recover(dir.path(), 1).unwrap();
        assert_eq!(got.iter().map(|b| b.lsn).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(got[0].commits[0].request.tx_id, "x");
    }

    #[test]
    fn a_flipped_bit_ends_the_log_and_a_gap_is_refused() {
        let (dir, path) = three_batches();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(Wal::recover(dir.path(), 0).unwrap().len(), 2);
        // The log restarts after batch 1 (its segment recycled) and batch 2 is logged again; the
        // store claiming only 0 applied, batch 1 is gone: a gap.
        let mut wal = Wal::start(dir.path(), 1).unwrap();
        wal.append(&batch(2, &CommitRequest::new("x"))).unwrap();
        assert!(matches!(Wal::recover(dir.path(), 0), Err(StoreError::Corrupt(_))));
    }

    /// A recycled segment keeps its blocks (its size) and what it held before; the frames left
    /// from that use end its log, intact as they are, and are never read as its batches.
    #[test]
    fn a_recycled_segment_ends_where_its_own_frames_end() {
        let (dir, old) = three_batches();
        let size = std::fs::metadata(&old).unwrap().len();
        let mut wal = Wal::start(dir.path(), 3).unwrap();
        let path = dir.path().join(segment_name(4));
        assert_eq!(segments(dir.path()).unwrap(), vec![(4, path.clone())], "renamed, the older one gone");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size, "its blocks kept");
        assert_eq!(read_segment(&path, 4).unwrap().0.len(), 0, "nothing of its own yet");
        // Batch 4 is the size of batch 1 it writes over: batches 2 and 3 follow it intact.
        wal.append(&batch(4, &CommitRequest::new("x"))).unwrap();
        let (batches, torn) = read_segment(&path, 4).unwrap();
        assert_eq!((batches.iter().map(|b| b.lsn).collect::<Vec<_>>(), torn), (vec![4], false));
        assert_eq!(Wal::recover(dir.path(), 3).unwrap().iter().map(|b| b.lsn).collect::<Vec<_>>(), vec![4]);
        wal.append(&batch(5, &CommitRequest::new("x"))).unwrap();
        wal.append(&batch(6, &CommitRequest::new("x"))).unwrap();
        wal.append(&batch(7, &CommitRequest::new("x"))).unwrap();
        assert_eq!(Wal::recover(dir.path(), 3).unwrap().len(), 4, "past the old end, the file grows");
    }

    #[test]
    fn rotation_deletes_checkpointed_segments() {
        let dir = tempfile::tempdir().unwrap();
        let req = CommitRequest::new("x");
        let mut wal = Wal::start(dir.path(), 0).unwrap();
        wal.append(&batch(1, &req)).unwrap();
        wal.rotate(1).unwrap();
        wal.append(&batch(2, &req)).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
        assert_eq!(Wal::recover(dir.path(), 1).unwrap().len(), 1);
    }

    /// A checkpoint written beside the writer: the log goes on in a new segment and keeps the
    /// older ones until the checkpoint is durable (a crash before then replays them, across
    /// the two segments), then keeps one to write over and deletes the rest.
    #[test]
    fn a_rolled_log_keeps_its_older_segments_until_released_and_recycles_one() {
        let dir = tempfile::tempdir().unwrap();
        let req = CommitRequest::new("x");
        let lsns = |applied| Wal::recover(dir.path(), applied).unwrap().iter().map(|b| b.lsn).collect::<Vec<_>>();
        let mut wal = Wal::start(dir.path(), 0).unwrap();
        for lsn in 1..=3 {
            wal.append(&batch(lsn, &req)).unwrap();
        }
        wal.roll(4).unwrap();
        wal.append(&batch(4, &req)).unwrap();
        assert_eq!(lsns(0), vec![1, 2, 3, 4], "the checkpoint is not durable yet: all of it replays");
        wal.append(&batch(5, &req)).unwrap();
        wal.release().unwrap();
        assert_eq!(lsns(3), vec![4, 5], "durable up to 3");
        wal.roll(6).unwrap();
        wal.append(&batch(6, &req)).unwrap();
        let names: Vec<u64> = segments(dir.path()).unwrap().into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, vec![4, 6], "segment 1 was written over as segment 6");
        assert_eq!(lsns(3), vec![4, 5, 6], "its old frames end it");
        wal.release().unwrap();
        wal.roll(7).unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 2, "one kept to recycle, one written");
        assert_eq!(lsns(6), Vec::<u64>::new());
    }
}
