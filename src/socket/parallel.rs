//! Parallel keystream: segments of one upload stream encrypted (or decrypted) at their keystream
//! offsets on a small pool of threads, handed back in stream order. ChaCha20 seeks, so a segment's
//! bytes do not depend on who encrypts it: the wire is exactly what one thread sends.
//!
//! The pool is one per process, grown to the largest thread count asked for and shared by every
//! upload and receive (a server with many uploads does not get a thread set per upload); each
//! [`ParallelKeystream`] keeps at most its own `threads - 1` jobs there and does the rest on the
//! calling thread, so `threads` cores are busy at most. Memory is a fixed number of segment buffers.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use tokio::sync::oneshot;

use super::cipher::StreamCipherState;
use super::pairing::StreamSecrets;
use crate::checksum::{Checksum, Hasher};
use crate::error::{Error, Result, KEYSTREAM_LIMIT};

/// Below this a segment is ciphered on the calling thread: a hand-off (queue, wake a worker, wake the
/// task back) costs about as much as ciphering 64 KiB on the 2-core reference machine (`norman bench`).
pub const MIN_PARALLEL_JOB: usize = 128 * 1024;

/// Segment sizes of the parallel path (an upload's `chunk_size`, a receive's buffer, clamped to this
/// range): large enough that hand-offs are rare, small enough to stay in the L2 cache between the
/// read, the hash, the cipher and the socket copy. Measured on the 2-core machine (1 GiB loopback):
/// 256 KiB segments cost the least CPU on both ends, 128 KiB a little more, 1 MiB 15-20% more.
pub const PARALLEL_SEGMENT: std::ops::RangeInclusive<usize> = 256 * 1024..=4 * 1024 * 1024;

/// Pool threads, whatever the configuration asks (memory and sanity bound).
pub const MAX_CIPHER_THREADS: usize = 64;

/// The most one stream's segment buffers hold, whatever the thread count.
const MAX_BUFFERED: usize = 16 * 1024 * 1024;

type Job = Box<dyn FnOnce() + Send>;

struct Pool {
    state: Mutex<PoolState>,
    ready: Condvar,
}

struct PoolState {
    jobs: VecDeque<Job>,
    workers: usize,
}

static POOL: Pool =
    Pool { state: Mutex::new(PoolState { jobs: VecDeque::new(), workers: 0 }), ready: Condvar::new() };

impl Pool {
    /// Grows the pool to `n` threads (never shrinks); returns how many there are. A failed spawn
    /// leaves fewer: the callers then cipher more on their own thread.
    fn ensure(&'static self, n: usize) -> usize {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while state.workers < n.min(MAX_CIPHER_THREADS) {
            let spawned = std::thread::Builder::new()
                .name(format!("norman-cipher-{}", state.workers))
                .spawn(move || self.work());
            if spawned.is_err() {
                break;
            }
            state.workers += 1;
        }
        state.workers
    }

    fn submit(&self, job: Job) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).jobs.push_back(job);
        self.ready.notify_one();
    }

    fn work(&self) {
        loop {
            let job = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(job) = state.jobs.pop_front() {
                        break job;
                    }
                    state = self.ready.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            };
            // A job only ciphers a buffer it owns; should it panic, its segment reports an error
            // (its sender is dropped) and the thread stays for the next job.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
        }
    }
}

/// The number of threads "0 = what the machine has" means.
pub fn available_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_CIPHER_THREADS)
}

enum Work {
    Done(Box<[u8]>),
    Running(oneshot::Receiver<Box<[u8]>>),
}

struct Segment {
    len: usize,
    work: Work,
}

/// One stream's keystream applied segment by segment, in parallel, handed back in order.
///
/// Take a buffer ([`ParallelKeystream::take_buffer`]), fill it, [`ParallelKeystream::push`] it
/// (the keystream is applied to `buf[from..len]` at the next offset), and take finished segments
/// back in the same order with [`ParallelKeystream::pop`]; give buffers back with
/// [`ParallelKeystream::recycle`].
pub struct ParallelKeystream {
    secrets: Arc<StreamSecrets>,
    /// Keystream offset of the next pushed byte.
    offset: u64,
    /// Jobs this stream may keep in the pool.
    jobs: usize,
    /// Segments shorter than this stay on the calling thread.
    min_job: usize,
    segment_len: usize,
    max_buffers: usize,
    allocated: usize,
    free: Vec<Box<[u8]>>,
    queue: VecDeque<Segment>,
    /// The calling thread's own cipher, kept while it stays in step (small segments in a row).
    inline: Option<StreamCipherState>,
}

impl ParallelKeystream {
    /// A pipeline at keystream `offset` of `secrets`' stream, ciphering on up to `threads` threads
    /// (this one included) with `2 × threads` buffers (at least 2, at most 16 MiB in all unless that
    /// is less than 2) of `segment_len` bytes.
    pub fn new(secrets: &StreamSecrets, offset: u64, threads: usize, segment_len: usize) -> Self {
        let threads = threads.clamp(1, MAX_CIPHER_THREADS);
        let jobs = if threads > 1 { POOL.ensure(threads - 1).min(threads - 1) } else { 0 };
        Self {
            secrets: Arc::new(secrets.clone()),
            offset,
            jobs,
            min_job: MIN_PARALLEL_JOB,
            segment_len: segment_len.max(1),
            max_buffers: (2 * threads).min(MAX_BUFFERED / segment_len.max(1)).max(2),
            allocated: 0,
            free: Vec::new(),
            queue: VecDeque::new(),
            inline: None,
        }
    }

    /// Overrides [`MIN_PARALLEL_JOB`] (what `norman bench` uses to measure the hand-off cost).
    #[doc(hidden)]
    pub fn with_min_job(mut self, min_job: usize) -> Self {
        self.min_job = min_job;
        self
    }

    /// Size of every buffer this pipeline hands out.
    pub fn segment_len(&self) -> usize {
        self.segment_len
    }

    /// Keystream offset of the next byte to push.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Segments pushed and not yet popped.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// A free buffer of [`ParallelKeystream::segment_len`] bytes, or `None` when all of them are
    /// queued: pop (and recycle) the oldest segment first.
    pub fn take_buffer(&mut self) -> Option<Box<[u8]>> {
        if let Some(buf) = self.free.pop() {
            return Some(buf);
        }
        if self.allocated < self.max_buffers {
            self.allocated += 1;
            return Some(vec![0u8; self.segment_len].into_boxed_slice());
        }
        None
    }

    /// Returns a buffer for reuse.
    pub fn recycle(&mut self, buf: Box<[u8]>) {
        if buf.len() == self.segment_len {
            self.free.push(buf);
        } else {
            self.allocated = self.allocated.saturating_sub(1);
        }
    }

    /// Queues `buf[..len]` with the keystream applied to `buf[from..len]` at the next offset (bytes
    /// before `from` are already final, e.g. an encrypted header). Fails, queuing nothing, if the
    /// stream would pass the 256 GiB keystream limit or the range is not inside the buffer.
    pub fn push(&mut self, mut buf: Box<[u8]>, from: usize, len: usize) -> Result<()> {
        if from > len || len > buf.len() {
            return Err(Error::InvalidArgument(format!(
                "segment range {from}..{len} outside a {}-byte buffer",
                buf.len()
            )));
        }
        let n = (len - from) as u64;
        let end = match self.offset.checked_add(n) {
            Some(end) if end <= KEYSTREAM_LIMIT => end,
            _ => return Err(Error::KeystreamExhausted { at: self.offset, requested: n }),
        };
        let at = std::mem::replace(&mut self.offset, end);
        if len - from >= self.min_job && self.running() < self.jobs {
            let (tx, rx) = oneshot::channel();
            let secrets = Arc::clone(&self.secrets);
            POOL.submit(Box::new(move || {
                // Cannot fail: the range was checked against the limit above.
                if StreamCipherState::at_offset(&secrets, at).apply_unhashed(&mut buf[from..len]).is_ok() {
                    let _ = tx.send(buf);
                }
            }));
            self.queue.push_back(Segment { len, work: Work::Running(rx) });
        } else {
            let state = match self.inline.take() {
                Some(state) if state.offset() == at => state,
                _ => StreamCipherState::at_offset(&self.secrets, at),
            };
            let state = self.inline.insert(state);
            state.apply_unhashed(&mut buf[from..len])?;
            self.queue.push_back(Segment { len, work: Work::Done(buf) });
        }
        Ok(())
    }

    /// The oldest queued segment once its keystream is applied: the buffer and its length; `None`
    /// when nothing is queued.
    pub async fn pop(&mut self) -> Option<Result<(Box<[u8]>, usize)>> {
        let segment = self.queue.pop_front()?;
        let buf = match segment.work {
            Work::Done(buf) => Ok(buf),
            Work::Running(rx) => rx.await.map_err(|_| {
                self.allocated = self.allocated.saturating_sub(1);
                Error::InvalidArgument("a cipher thread failed".into())
            }),
        };
        Some(buf.map(|buf| (buf, segment.len)))
    }

    /// Jobs of this stream still in the pool (finished ones are collected on the way).
    fn running(&mut self) -> usize {
        let mut running = 0;
        for segment in &mut self.queue {
            if let Work::Running(rx) = &mut segment.work {
                match rx.try_recv() {
                    Ok(buf) => segment.work = Work::Done(buf),
                    Err(oneshot::error::TryRecvError::Empty) => running += 1,
                    Err(oneshot::error::TryRecvError::Closed) => {}
                }
            }
        }
        running
    }
}

/// The sender's side of the parallel path: file bytes are gathered into a segment, hashed there in
/// stream order on the calling thread (xxh3 is several times faster than the cipher), then handed to
/// [`ParallelKeystream`]; the socket takes finished segments in order.
pub(crate) struct SealPipeline {
    keystream: ParallelKeystream,
    hasher: Hasher,
    /// The segment being filled: `buf[..start]` is final already (the encrypted header), `buf[start..filled]`
    /// plaintext file bytes.
    current: Option<Box<[u8]>>,
    start: usize,
    filled: usize,
    header_len: u64,
    /// Wire bytes handed to the socket.
    sent: u64,
}

impl SealPipeline {
    /// A pipeline whose first segment starts with the already encrypted header; the file's keystream
    /// starts at `offset`.
    pub(crate) fn new(
        secrets: &StreamSecrets,
        offset: u64,
        encrypted_header: &[u8],
        threads: usize,
        segment_len: usize,
    ) -> Self {
        let mut keystream =
            ParallelKeystream::new(secrets, offset, threads, segment_len.max(encrypted_header.len() + 1));
        let mut current = keystream.take_buffer();
        if let Some(buf) = &mut current {
            buf[..encrypted_header.len()].copy_from_slice(encrypted_header);
        }
        let start = encrypted_header.len();
        Self {
            keystream,
            hasher: Hasher::new(),
            current,
            start,
            filled: start,
            header_len: start as u64,
            sent: 0,
        }
    }

    /// Room left in the segment being filled; `None` when every buffer is queued: send the oldest
    /// segment first.
    pub(crate) fn room(&mut self) -> Option<&mut [u8]> {
        if self.current.is_none() {
            self.current = Some(self.keystream.take_buffer()?);
            (self.start, self.filled) = (0, 0);
        }
        let filled = self.filled;
        self.current.as_mut().map(|buf| &mut buf[filled..])
    }

    /// Records `n` bytes written into [`SealPipeline::room`]; a full segment is sealed. Fails if the
    /// stream would pass the keystream limit (then nothing of these bytes is ever sent).
    pub(crate) fn filled(&mut self, n: usize) -> Result<()> {
        let end = self.end_offset() + n as u64;
        if end > KEYSTREAM_LIMIT {
            return Err(Error::KeystreamExhausted { at: self.end_offset(), requested: n as u64 });
        }
        self.filled += n;
        if self.filled == self.keystream.segment_len() {
            self.seal()?;
        }
        Ok(())
    }

    /// Hashes the segment being filled and hands it to the keystream (even if partial: a flush).
    pub(crate) fn seal(&mut self) -> Result<()> {
        let Some(buf) = self.current.take() else { return Ok(()) };
        let (start, filled) = (self.start, self.filled);
        (self.start, self.filled) = (0, 0);
        if filled == 0 {
            self.keystream.recycle(buf);
            return Ok(());
        }
        self.hasher.update(&buf[start..filled]);
        self.keystream.push(buf, start, filled)
    }

    /// Keystream offset after every byte accepted so far (sealed or not).
    pub(crate) fn end_offset(&self) -> u64 {
        self.keystream.offset() + (self.filled - self.start) as u64
    }

    /// The oldest sealed segment, ready for the socket (`None`: nothing is queued).
    pub(crate) async fn oldest(&mut self) -> Option<Result<(Box<[u8]>, usize)>> {
        self.keystream.pop().await
    }

    /// Gives back a segment the socket took, `len` wire bytes of it.
    pub(crate) fn sent(&mut self, buf: Box<[u8]>, len: usize) {
        self.sent += len as u64;
        self.keystream.recycle(buf);
    }

    /// File bytes handed to the socket.
    pub(crate) fn content_sent(&self) -> u64 {
        self.sent.saturating_sub(self.header_len)
    }

    /// File bytes accepted so far and their checksum (the unsealed tail included).
    pub(crate) fn summary(&self) -> (u64, Checksum) {
        match &self.current {
            Some(buf) if self.filled > self.start => {
                let mut hasher = self.hasher.clone();
                hasher.update(&buf[self.start..self.filled]);
                (hasher.len(), hasher.digest())
            }
            _ => (self.hasher.len(), self.hasher.digest()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keystream(secrets: &StreamSecrets, at: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        StreamCipherState::at_offset(secrets, at).apply_unhashed(&mut buf).unwrap();
        buf
    }

    /// Segments of every size class on 3 threads, up to the last keystream block: each one is the
    /// keystream at its own offset, in push order, and nothing past the limit is accepted.
    #[tokio::test]
    async fn segments_come_back_in_order_with_their_keystream_up_to_the_limit() {
        let secrets = StreamSecrets::generate(16);
        let lens = [MIN_PARALLEL_JOB, 10, MIN_PARALLEL_JOB + 77, 1, 200_000, MIN_PARALLEL_JOB - 1, 64];
        // Bytes keystreamed: each segment's first `i % 3` bytes are skipped.
        let used: u64 = lens.iter().enumerate().map(|(i, &n)| (n - i % 3) as u64).sum();
        for start in [0u64, 1000, KEYSTREAM_LIMIT - used] {
            let mut pipeline = ParallelKeystream::new(&secrets, start, 3, 256 * 1024);
            let mut at = start;
            let mut expected = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                let mut buf = pipeline.take_buffer().expect("6 buffers for 3 threads");
                buf[..len].fill(0);
                // A few leading bytes count as already final, as the header does.
                let from = i % 3;
                buf[..from].fill(0xee);
                pipeline.push(buf, from, len).unwrap();
                expected.push((at, from, len));
                at += (len - from) as u64;
                if pipeline.queued() == 5 {
                    let (buf, len) = pipeline.pop().await.unwrap().unwrap();
                    let (at, from, want_len) = expected.remove(0);
                    assert_eq!(len, want_len);
                    assert!(buf[..from].iter().all(|&b| b == 0xee));
                    assert!(buf[from..len] == keystream(&secrets, at, len - from)[..], "segment at {at}");
                    pipeline.recycle(buf);
                }
            }
            while let Some(segment) = pipeline.pop().await {
                let (buf, len) = segment.unwrap();
                let (at, from, want_len) = expected.remove(0);
                assert_eq!(len, want_len);
                assert!(buf[from..len] == keystream(&secrets, at, len - from)[..], "segment at {at}");
                pipeline.recycle(buf);
            }
            assert!(expected.is_empty());
            assert_eq!(pipeline.offset(), start + used);
        }
        let mut pipeline = ParallelKeystream::new(&secrets, KEYSTREAM_LIMIT - 10, 2, 64);
        let buf = pipeline.take_buffer().unwrap();
        let err = pipeline.push(buf, 0, 11).unwrap_err();
        assert!(matches!(err, Error::KeystreamExhausted { requested: 11, .. }), "{err:?}");
        assert_eq!((pipeline.offset(), pipeline.queued()), (KEYSTREAM_LIMIT - 10, 0));
        let buf = pipeline.take_buffer().unwrap();
        assert!(matches!(pipeline.push(buf, 5, 65), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn buffers_are_bounded() {
        let secrets = StreamSecrets::generate(16);
        let mut pipeline = ParallelKeystream::new(&secrets, 0, 2, 1 << 20);
        let held: Vec<_> = std::iter::from_fn(|| pipeline.take_buffer()).take(100).collect();
        assert_eq!(held.len(), 4, "2 × threads buffers");
        let mut big = ParallelKeystream::new(&secrets, 0, 64, 4 << 20);
        assert_eq!(std::iter::from_fn(|| big.take_buffer()).take(100).count(), 4, "16 MiB at most");
    }
}
