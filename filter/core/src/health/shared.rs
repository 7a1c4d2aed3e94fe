//! Pool health as every worker of the gateway sees it: one record per pool
//! name, kept by the host for the whole process (proxy-wasm shared data) and
//! changed only by compare-and-swap, so that workers that write at once do
//! not lose each other's changes.
//!
//! The bytes are the filter's own format, read defensively: anything that
//! is not what this module wrote (another plugin's data, a torn or truncated
//! value) reads as "no state", never as a stuck ejection.
//!
//! ```text
//! board  = "SSH1" count:u16 record*        (big-endian)
//! record = name-len:u8 name state:u8 failures:u32 until:u64 holder:u64
//! ```

/// Where the board lives: the host's shared data under a key of this
/// plugin's own, or a map in tests.
pub trait HealthStore {
    /// The stored bytes and their version; `None` when nothing is stored
    /// (or the host cannot tell).
    fn load(&mut self) -> Option<(Vec<u8>, u32)>;
    /// Stores `bytes` if the stored version is still `version` (0 when
    /// nothing was stored).
    fn store(&mut self, bytes: &[u8], version: u32) -> Stored;
}

/// What a compare-and-swap write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Yes,
    /// Another writer came first: read again and retry.
    Conflict,
    /// The host refused; the change is not shared.
    Failed,
}

/// One pool's health as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record {
    /// In service, after this many consecutive gateway-level failures.
    Closed { failures: u32 },
    /// Ejected until this time (seconds since the Unix epoch).
    Open { until: u64 },
    /// The ejection is over; `holder` (a worker's token, 0 for none) may
    /// send the one probe until `until`, then the lease is free again.
    HalfOpen { holder: u64, until: u64 },
}

const MAGIC: &[u8; 4] = b"SSH1";
/// More records than any valid config has pools: the rest is not ours.
const MAX_RECORDS: usize = 1024;
const MAX_NAME: usize = 255;

/// Every pool's record, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Board {
    records: Vec<(Vec<u8>, Record)>,
}

impl Board {
    /// Reads a board; bytes that are not a whole, well-formed board read as
    /// an empty one.
    pub fn decode(bytes: &[u8]) -> Board {
        decode_records(bytes)
            .map(|records| Board { records })
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.records.len() * 32);
        out.extend_from_slice(MAGIC);
        let count = u16::try_from(self.records.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for (name, record) in self.records.iter().take(usize::from(count)) {
            let (tag, failures, until, holder) = match *record {
                Record::Closed { failures } => (0u8, failures, 0, 0),
                Record::Open { until } => (1, 0, until, 0),
                Record::HalfOpen { holder, until } => (2, 0, until, holder),
            };
            out.push(u8::try_from(name.len()).unwrap_or(0));
            out.extend_from_slice(name);
            out.push(tag);
            out.extend_from_slice(&failures.to_be_bytes());
            out.extend_from_slice(&until.to_be_bytes());
            out.extend_from_slice(&holder.to_be_bytes());
        }
        out
    }

    /// The record of pool `name`; a pool without one is in service.
    pub fn get(&self, name: &str) -> Record {
        self.records
            .iter()
            .find(|(n, _)| n == name.as_bytes())
            .map_or(Record::Closed { failures: 0 }, |(_, r)| *r)
    }

    pub fn set(&mut self, name: &str, record: Record) {
        if name.is_empty() || name.len() > MAX_NAME {
            return;
        }
        let full = self.records.len() >= MAX_RECORDS;
        match self.records.iter_mut().find(|(n, _)| n == name.as_bytes()) {
            Some((_, r)) => *r = record,
            None if !full => self.records.push((name.as_bytes().to_vec(), record)),
            None => {}
        }
    }

    /// Forgets the records `keep` says no to (by pool name and record).
    pub fn retain(&mut self, keep: impl Fn(&[u8], &Record) -> bool) {
        self.records.retain(|(name, record)| keep(name, record));
    }
}

fn decode_records(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Record)>> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let count = usize::from(u16::from_be_bytes(r.array()?));
    if count > MAX_RECORDS {
        return None;
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len = usize::from(r.byte()?);
        let name = r.take(len)?.to_vec();
        let tag = r.byte()?;
        let failures = u32::from_be_bytes(r.array()?);
        let until = u64::from_be_bytes(r.array()?);
        let holder = u64::from_be_bytes(r.array()?);
        let record = match tag {
            0 => Record::Closed { failures },
            1 => Record::Open { until },
            2 => Record::HalfOpen { holder, until },
            _ => return None,
        };
        if name.is_empty() || records.iter().any(|(n, _)| *n == name) {
            return None;
        }
        records.push((name, record));
    }
    r.0.is_empty().then_some(records)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let head = self.0.get(..n)?;
        self.0 = self.0.get(n..)?;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// Attempts at a compare-and-swap before giving up: each retry means another
/// worker changed the board in between, which only failures and probes do.
pub const ATTEMPTS: usize = 8;

/// Why an update did not reach the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unshared {
    /// The host refused the write (the glue logs the host call).
    Refused,
    /// Another writer came first [`ATTEMPTS`] times in a row.
    GaveUp,
}

/// Reads the board, lets `change` edit it, and writes it back if it changed,
/// retrying when another worker wrote in between. Returns the board as it
/// stands after the write (or as read, when nothing changed), its version,
/// and what `change` returned; else why the change is not on the board.
pub fn update<T>(
    store: &mut dyn HealthStore,
    mut change: impl FnMut(&mut Board) -> T,
) -> Result<(Board, u32, T), Unshared> {
    for _ in 0..ATTEMPTS {
        let (bytes, version) = store.load().unwrap_or_default();
        let mut board = Board::decode(&bytes);
        let before = board.clone();
        let out = change(&mut board);
        if board == before {
            return Ok((board, version, out));
        }
        match store.store(&board.encode(), version) {
            Stored::Yes => {
                // the version our write made is unknown until the next read
                return Ok((board, 0, out));
            }
            Stored::Conflict => continue,
            Stored::Failed => return Err(Unshared::Refused),
        }
    }
    Err(Unshared::GaveUp)
}
