//! Bounds on what one evidence may cost to unpack: a compressed member (gzip, or a
//! deflated zip entry) may expand only so far — in absolute size, and relative to its
//! compressed size — and a zip's members together only so far. A bomb (a megabyte of gzip
//! that unpacks to a gigabyte of zeros, or to one gigabyte-long line) is stopped after at
//! most [`Limits::ratio_floor`] bytes and fails its evidence with [`PipelineError::Limit`]
//! naming the limit and the setting that raises it; it is not retried.
//!
//! The defaults admit real evidence: EVTX compresses about 5 to 20 times, text logs up to
//! about 30 times, and multi-gigabyte EVTX sets pass the absolute limits. Settings:
//! `CHRONO_MAX_MEMBER_BYTES`, `CHRONO_MAX_EVIDENCE_BYTES`, `CHRONO_MAX_EXPANSION_RATIO`.
//!
//! Time: each step run over an evidence file (`split`, and `parse` of each part) has a
//! budget of [`Limits::time_min`] plus [`Limits::time_per_gib`] per GiB of the stored
//! file ([`Limits::budget`]; defaults 120 s + 1800 s/GiB, far above what real evidence
//! needs: a 1 GiB EVTX set parses in about a minute). Past it the step fails the evidence
//! with [`PipelineError::Limit`] naming the setting (`CHRONO_PROCESSING_MIN_SECS`,
//! `CHRONO_PROCESSING_SECS_PER_GIB`); it is not retried. The clock is read on every read
//! of the stored file ([`Timed`]) and on every record, so neither a file that unpacks to
//! endless bytes without records nor one that yields records slowly can outlast it.
//!
//! Records: a text line is at most 4 MiB ([`super::text::MAX_LINE_LEN`], a longer one is
//! a bad record and skipped), a CSV record and a CloudTrail record at most 16 MiB.
//!
//! This module only measures; the readers it wraps are the steps' ([`super::steps`]).

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::error::PipelineError;

/// Environment variable: the largest unpacked size of one member, in bytes.
pub const MAX_MEMBER_BYTES_VAR: &str = "CHRONO_MAX_MEMBER_BYTES";
/// Environment variable: the largest unpacked size of a zip's members together, in bytes.
pub const MAX_EVIDENCE_BYTES_VAR: &str = "CHRONO_MAX_EVIDENCE_BYTES";
/// Environment variable: the largest expansion of a compressed member (unpacked bytes per
/// compressed byte).
pub const MAX_EXPANSION_RATIO_VAR: &str = "CHRONO_MAX_EXPANSION_RATIO";
/// Environment variable: the processing time every evidence file gets, in seconds.
pub const PROCESSING_MIN_SECS_VAR: &str = "CHRONO_PROCESSING_MIN_SECS";
/// Environment variable: the processing time added per GiB of the stored file, in seconds.
pub const PROCESSING_SECS_PER_GIB_VAR: &str = "CHRONO_PROCESSING_SECS_PER_GIB";

const GIB: u64 = 1024 * 1024 * 1024;

/// The bounds (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest unpacked size of one member.
    pub max_member_bytes: u64,
    /// The largest unpacked size of a zip's members together (from the sizes the archive
    /// declares, checked by `split`; each member's real size is bounded while it is read).
    pub max_evidence_bytes: u64,
    /// The largest expansion of a compressed member.
    pub max_ratio: u64,
    /// The ratio is judged once this many bytes are unpacked (a small, very compressible
    /// file is no threat).
    pub ratio_floor: u64,
    /// The time every step run over a file gets.
    pub time_min: Duration,
    /// The time added per GiB of the stored file.
    pub time_per_gib: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_member_bytes: 64 * GIB,
            max_evidence_bytes: 512 * GIB,
            max_ratio: 200,
            ratio_floor: 64 * 1024 * 1024,
            time_min: Duration::from_secs(120),
            time_per_gib: Duration::from_secs(1800),
        }
    }
}

impl Limits {
    /// The defaults, with each setting that is set in the environment.
    pub fn from_env() -> Result<Limits, PipelineError> {
        let mut limits = Limits::default();
        let mut min_secs = limits.time_min.as_secs();
        let mut secs_per_gib = limits.time_per_gib.as_secs();
        for (var, slot) in [
            (MAX_MEMBER_BYTES_VAR, &mut limits.max_member_bytes),
            (MAX_EVIDENCE_BYTES_VAR, &mut limits.max_evidence_bytes),
            (MAX_EXPANSION_RATIO_VAR, &mut limits.max_ratio),
            (PROCESSING_MIN_SECS_VAR, &mut min_secs),
            (PROCESSING_SECS_PER_GIB_VAR, &mut secs_per_gib),
        ] {
            if let Some(v) = std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
                *slot = v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        PipelineError::Config(format!(
                            "{var} must be a positive whole number, not {v:?}"
                        ))
                    })?;
            }
        }
        limits.time_min = Duration::from_secs(min_secs);
        limits.time_per_gib = Duration::from_secs(secs_per_gib);
        Ok(limits)
    }

    /// The processing time of a step run over a stored file of `stored` bytes.
    pub fn budget(&self, stored: u64) -> Duration {
        let per_gib = self.time_per_gib.as_secs_f64() * stored as f64 / GIB as f64;
        self.time_min
            .saturating_add(Duration::try_from_secs_f64(per_gib).unwrap_or(Duration::MAX))
    }

    /// The deadline of a step run starting now over `stored` bytes of `member`.
    pub fn deadline(&self, member: &str, stored: u64) -> Deadline {
        let budget = self.budget(stored);
        Deadline {
            at: Instant::now().checked_add(budget),
            budget,
            stored,
            member: member.to_owned(),
            // the setting that gives this file most of its budget
            setting: if budget > self.time_min.saturating_mul(2) {
                PROCESSING_SECS_PER_GIB_VAR
            } else {
                PROCESSING_MIN_SECS_VAR
            },
        }
    }

    /// [`PipelineError::Limit`] unless a zip whose members declare `declared` bytes in all
    /// fits [`Limits::max_evidence_bytes`].
    pub fn check_declared_total(&self, member: &str, declared: u64) -> Result<(), PipelineError> {
        if declared > self.max_evidence_bytes {
            return Err(Exceeded {
                member: member.to_owned(),
                what: format!("the members' unpacked size ({})", bytes(declared)),
                limit: bytes(self.max_evidence_bytes),
                setting: MAX_EVIDENCE_BYTES_VAR,
            }
            .into());
        }
        Ok(())
    }
}

/// A limit a reader ran into; travels inside an [`io::Error`] of kind `FileTooLarge`
/// through the parsers and becomes [`PipelineError::Limit`] in [`PipelineError::io`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{member}: {what} exceeds the limit of {limit} (raise {setting})")]
pub struct Exceeded {
    /// The member.
    pub member: String,
    /// What was measured.
    pub what: String,
    /// The limit.
    pub limit: String,
    /// The setting that raises it.
    pub setting: &'static str,
}

impl From<Exceeded> for PipelineError {
    fn from(e: Exceeded) -> PipelineError {
        PipelineError::Limit {
            member: e.member,
            what: e.what,
            limit: e.limit,
            hint: format!("set {} to raise it", e.setting),
        }
    }
}

fn bytes(n: u64) -> String {
    if n >= GIB {
        format!("{:.1} GiB", n as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    }
}

/// When a step run over one file must be done ([`Limits::deadline`]).
#[derive(Debug, Clone)]
pub struct Deadline {
    at: Option<Instant>,
    budget: Duration,
    stored: u64,
    member: String,
    setting: &'static str,
}

impl Deadline {
    /// [`Exceeded`] once the budget is spent.
    pub fn check(&self) -> Result<(), Exceeded> {
        match self.at {
            Some(at) if Instant::now() >= at => Err(Exceeded {
                member: self.member.clone(),
                what: format!(
                    "the processing time (over {} s for {} stored)",
                    self.budget.as_secs(),
                    bytes(self.stored)
                ),
                limit: format!("{} s", self.budget.as_secs()),
                setting: self.setting,
            }),
            _ => Ok(()),
        }
    }
}

/// A stored file whose every read and seek fails once its [`Deadline`] has passed.
#[derive(Debug)]
pub struct Timed<R> {
    inner: R,
    deadline: Deadline,
}

impl<R> Timed<R> {
    /// `inner` under `deadline`.
    pub fn new(inner: R, deadline: Deadline) -> Timed<R> {
        Timed { inner, deadline }
    }

    /// The deadline.
    pub fn deadline(&self) -> &Deadline {
        &self.deadline
    }

    fn check(&self) -> io::Result<()> {
        self.deadline
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::FileTooLarge, e))
    }
}

impl<R: Read> Read for Timed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        self.inner.read(buf)
    }
}

impl<R: Seek> Seek for Timed<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.check()?;
        self.inner.seek(pos)
    }
}

/// How many compressed bytes stand behind what a [`Bounded`] reader unpacks.
#[derive(Debug, Clone)]
pub enum Compressed {
    /// Known up front (a zip entry's compressed size).
    Known(u64),
    /// Counted as they are read ([`Counting`]).
    Counted(Arc<AtomicU64>),
}

impl Compressed {
    fn bytes(&self) -> u64 {
        match self {
            Compressed::Known(n) => *n,
            Compressed::Counted(n) => n.load(Ordering::Relaxed),
        }
    }
}

/// Counts the bytes read through it (the compressed side of a decoder).
#[derive(Debug)]
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// `inner`, counted; the counter to hand to [`Compressed::Counted`].
    pub fn new(inner: R) -> (Counting<R>, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: Arc::clone(&count),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The unpacked side of a compressed member, stopped at the first limit it exceeds (and
/// every read after that fails the same way).
#[derive(Debug)]
pub struct Bounded<R> {
    inner: R,
    member: String,
    compressed: Compressed,
    limits: Limits,
    unpacked: u64,
}

impl<R> Bounded<R> {
    /// `inner` (unpacking `compressed` bytes of `member`) under `limits`.
    pub fn new(inner: R, member: &str, compressed: Compressed, limits: Limits) -> Bounded<R> {
        Bounded {
            inner,
            member: member.to_owned(),
            compressed,
            limits,
            unpacked: 0,
        }
    }

    fn exceeded(&self) -> Option<Exceeded> {
        if self.unpacked > self.limits.max_member_bytes {
            return Some(Exceeded {
                member: self.member.clone(),
                what: format!("the unpacked size (over {})", bytes(self.unpacked)),
                limit: bytes(self.limits.max_member_bytes),
                setting: MAX_MEMBER_BYTES_VAR,
            });
        }
        let compressed = self.compressed.bytes().max(1);
        if self.unpacked > self.limits.ratio_floor
            && self.unpacked > compressed.saturating_mul(self.limits.max_ratio)
        {
            return Some(Exceeded {
                member: self.member.clone(),
                what: format!(
                    "the expansion ({} from {} compressed, {}:1)",
                    bytes(self.unpacked),
                    bytes(compressed),
                    self.unpacked / compressed
                ),
                limit: format!("{}:1", self.limits.max_ratio),
                setting: MAX_EXPANSION_RATIO_VAR,
            });
        }
        None
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.exceeded() {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, e));
        }
        let n = self.inner.read(buf)?;
        self.unpacked += n as u64;
        match self.exceeded() {
            Some(e) => Err(io::Error::new(io::ErrorKind::FileTooLarge, e)),
            None => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn unpack(gz: &[u8], limits: Limits) -> io::Result<u64> {
        let (counted, count) = Counting::new(gz);
        let mut reader = Bounded::new(
            flate2::read::GzDecoder::new(counted),
            "m.log.gz",
            Compressed::Counted(count),
            limits,
        );
        io::copy(&mut reader, &mut io::sink())
    }

    #[test]
    fn a_bomb_stops_at_the_ratio_and_ordinary_data_passes() {
        let small = Limits {
            ratio_floor: 1024 * 1024,
            ..Limits::default()
        };
        // 16 MiB of zeros: about 16 KiB of gzip, 1000:1
        let zeros = gzip(&vec![0u8; 16 * 1024 * 1024]);
        let err = unpack(&zeros, small).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
        let e = PipelineError::io("unpacking")(err);
        let text = e.to_string();
        assert!(
            matches!(e, PipelineError::Limit { .. })
                && text.contains("expansion")
                && text.contains(MAX_EXPANSION_RATIO_VAR),
            "{text}"
        );
        assert!(!e.is_retryable());
        // text that compresses 10:1 is fine
        let text: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("line {i} sshd[{}]: Accepted\n", i * 7919 % 65_536).into_bytes())
            .collect();
        assert_eq!(unpack(&gzip(&text), small).unwrap(), text.len() as u64);
    }

    #[test]
    fn the_absolute_size_is_bounded_and_named() {
        let limits = Limits {
            max_member_bytes: 1000,
            ..Limits::default()
        };
        let err = unpack(&gzip(&[b'a'; 5000]), limits).unwrap_err();
        let e = PipelineError::io("unpacking")(err);
        assert!(e.to_string().contains(MAX_MEMBER_BYTES_VAR), "{e}");
        assert!(
            Limits::default()
                .check_declared_total("x.zip", 511 * GIB)
                .is_ok()
                && Limits::default()
                    .check_declared_total("x.zip", 513 * GIB)
                    .is_err()
        );
    }

    #[test]
    fn the_time_budget_scales_with_the_stored_size_and_stops_reads() {
        let limits = Limits::default();
        assert_eq!(limits.budget(0), Duration::from_secs(120));
        assert_eq!(limits.budget(GIB), Duration::from_secs(120 + 1800));
        assert_eq!(limits.budget(4 * GIB), Duration::from_secs(120 + 4 * 1800));
        // a budget already spent: the first read fails, naming the time and the setting
        let spent = Limits {
            time_min: Duration::ZERO,
            time_per_gib: Duration::ZERO,
            ..Limits::default()
        };
        let mut r = Timed::new(&b"line\n"[..], spent.deadline("auth.log", 5));
        let err = r.read(&mut [0u8; 8]).unwrap_err();
        let e = PipelineError::io("reading")(err);
        assert!(matches!(e, PipelineError::Limit { .. }), "{e}");
        assert!(!e.is_retryable());
        let text = e.to_string();
        assert!(
            text.contains("processing time") && text.contains(PROCESSING_MIN_SECS_VAR),
            "{text}"
        );
        // an ample one reads through
        let mut r = Timed::new(&b"line\n"[..], limits.deadline("auth.log", 5));
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"line\n");
    }
}
