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
//! This module only measures; the readers it wraps are the steps' ([`super::steps`]).

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::PipelineError;

/// Environment variable: the largest unpacked size of one member, in bytes.
pub const MAX_MEMBER_BYTES_VAR: &str = "CHRONO_MAX_MEMBER_BYTES";
/// Environment variable: the largest unpacked size of a zip's members together, in bytes.
pub const MAX_EVIDENCE_BYTES_VAR: &str = "CHRONO_MAX_EVIDENCE_BYTES";
/// Environment variable: the largest expansion of a compressed member (unpacked bytes per
/// compressed byte).
pub const MAX_EXPANSION_RATIO_VAR: &str = "CHRONO_MAX_EXPANSION_RATIO";

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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_member_bytes: 64 * GIB,
            max_evidence_bytes: 512 * GIB,
            max_ratio: 200,
            ratio_floor: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// The defaults, with each setting that is set in the environment.
    pub fn from_env() -> Result<Limits, PipelineError> {
        let mut limits = Limits::default();
        for (var, slot) in [
            (MAX_MEMBER_BYTES_VAR, &mut limits.max_member_bytes),
            (MAX_EVIDENCE_BYTES_VAR, &mut limits.max_evidence_bytes),
            (MAX_EXPANSION_RATIO_VAR, &mut limits.max_ratio),
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
        Ok(limits)
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
}
