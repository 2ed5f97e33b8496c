//! Format detection from content: magic bytes for binary formats, the first line for
//! text ones. File names are never trusted (an `.evtx` that is a zip is read as a zip).

use serde::{Deserialize, Serialize};
use std::io::{self, Read};

/// How many bytes detection looks at.
pub const SNIFF_LEN: usize = 64 * 1024;

/// A container or evidence format the pipeline reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// gzip stream (possibly multi-member); unpacked, then detected again.
    Gzip,
    /// zip archive; its members are processed one by one.
    Zip,
    /// Windows XML event log.
    Evtx,
    /// Timesketch import CSV.
    TimesketchCsv,
    /// Timesketch import JSON lines.
    TimesketchJsonl,
    /// Plaso `psort -o json_line` output.
    PlasoJsonLine,
    /// syslog text (RFC 3164, RFC 5424, or RFC 3339-stamped file lines).
    Syslog,
    /// AWS CloudTrail log file `{"Records":[...]}`.
    CloudTrail,
    /// AWS CloudTrail events, one JSON object per line (Lake/Athena exports).
    CloudTrailJsonl,
}

impl Format {
    /// A short lowercase name for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Gzip => "gzip",
            Format::Zip => "zip",
            Format::Evtx => "evtx",
            Format::TimesketchCsv => "timesketch csv",
            Format::TimesketchJsonl => "timesketch jsonl",
            Format::PlasoJsonLine => "plaso json_line",
            Format::Syslog => "syslog",
            Format::CloudTrail => "cloudtrail",
            Format::CloudTrailJsonl => "cloudtrail jsonl",
        }
    }

    /// Whether this is a container whose content must be detected again.
    pub const fn is_container(self) -> bool {
        matches!(self, Format::Gzip | Format::Zip)
    }
}

/// Reads up to `n` bytes from the start of `reader` and gives them back together with a
/// reader that still yields the whole stream.
///
/// A read error after some bytes (a gzip stream that breaks off early) is kept for later:
/// the returned reader yields the bytes read so far, then that error, so the records
/// before the break are still parsed.
pub fn peek<R: Read>(mut reader: R, n: usize) -> io::Result<(Vec<u8>, Peeked<R>)> {
    let mut head = vec![0u8; n];
    let mut filled = 0;
    let mut pending = None;
    while filled < n {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if filled == 0 => return Err(e),
            Err(e) => {
                pending = Some(e);
                break;
            }
        }
    }
    head.truncate(filled);
    let again = head.clone();
    Ok((
        head,
        io::Cursor::new(again).chain(Pending {
            error: pending,
            inner: reader,
        }),
    ))
}

/// The whole stream again, after [`peek`].
pub type Peeked<R> = io::Chain<io::Cursor<Vec<u8>>, Pending<R>>;

/// A reader that first returns a stored error, then reads from `inner`.
#[derive(Debug)]
pub struct Pending<R> {
    error: Option<io::Error>,
    inner: R,
}

impl<R: Read> Read for Pending<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.error.take() {
            Some(e) => Err(e),
            None => self.inner.read(buf),
        }
    }
}

/// Detects the format of a stream from its first bytes; `Err` carries a lowercase reason
/// saying what the content looked like.
pub fn sniff(head: &[u8]) -> Result<Format, String> {
    if head.is_empty() {
        return Err("the file is empty".into());
    }
    if head.starts_with(b"ElfFile\0") {
        return Ok(Format::Evtx);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Format::Gzip);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Format::Zip);
    }
    if head.starts_with(b"ElfChnk\0") {
        return Err("an evtx chunk without its file header (a carved fragment?)".into());
    }
    if head.len() > 262 && &head[257..262] == b"ustar" {
        return Err("a tar archive; upload a zip or the files themselves".into());
    }
    for (magic, what) in [
        (&b"BZh"[..], "bzip2"),
        (&b"\xfd7zXZ\0"[..], "xz"),
        (&b"7z\xbc\xaf\x27\x1c"[..], "7-zip"),
        (&b"\x28\xb5\x2f\xfd"[..], "zstd"),
        (&b"Rar!"[..], "rar"),
        (&b"SQLite format 3\0"[..], "sqlite"),
    ] {
        if head.starts_with(magic) {
            return Err(format!(
                "a {what} file; upload a zip, gzip or the files themselves"
            ));
        }
    }
    if head.starts_with(b"\xff\xfe") || head.starts_with(b"\xfe\xff") {
        return Err("utf-16 text; save it as utf-8 and upload it again".into());
    }
    let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let text = trim_ascii_start(text);
    if text.is_empty() {
        return Err("the file holds only whitespace".into());
    }
    if text.contains(&0) {
        return Err("a binary file that is not evtx, gzip or zip".into());
    }
    let first_line = first_line(text);
    if text.starts_with(b"{") {
        if is_cloudtrail_document(text) {
            return Ok(Format::CloudTrail);
        }
        return match first_line {
            Some(line) => sniff_json_line(line),
            None => {
                Err("json whose first line is longer than 64 KiB and is no cloudtrail log".into())
            }
        };
    }
    let Some(line) = first_line else {
        return Err("text whose first line is longer than 64 KiB".into());
    };
    let Ok(line) = std::str::from_utf8(line) else {
        return Err("text that is not utf-8".into());
    };
    if is_timesketch_csv_header(line) {
        return Ok(Format::TimesketchCsv);
    }
    if super::formats::syslog::looks_like_syslog(line) {
        return Ok(Format::Syslog);
    }
    let shown: String = line.chars().take(60).collect();
    Err(format!(
        "text that is no syslog, timesketch csv or json lines (first line: {shown:?})"
    ))
}

fn trim_ascii_start(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// The first line without its end, when the head holds all of it.
fn first_line(text: &[u8]) -> Option<&[u8]> {
    let end = text.iter().position(|&b| b == b'\n')?;
    let line = &text[..end];
    Some(line.strip_suffix(b"\r").unwrap_or(line))
}

/// `{"Records": [` with any whitespace: the shape AWS writes CloudTrail files in.
fn is_cloudtrail_document(text: &[u8]) -> bool {
    let rest = trim_ascii_start(&text[1..]);
    let Some(rest) = rest.strip_prefix(b"\"Records\"") else {
        return false;
    };
    let rest = trim_ascii_start(rest);
    let Some(rest) = rest.strip_prefix(b":") else {
        return false;
    };
    trim_ascii_start(rest).starts_with(b"[")
}

fn sniff_json_line(line: &[u8]) -> Result<Format, String> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| format!("json lines whose first line is not valid json ({e})"))?;
    let Some(obj) = value.as_object() else {
        return Err("json lines whose first line is not an object".into());
    };
    if obj.contains_key("__container_type__")
        || obj.get("date_time").is_some_and(|v| v.is_object())
        || obj.get("pathspec").is_some_and(|v| v.is_object())
    {
        return Ok(Format::PlasoJsonLine);
    }
    if obj.contains_key("eventSource")
        && obj.contains_key("eventName")
        && obj.contains_key("eventTime")
    {
        return Ok(Format::CloudTrailJsonl);
    }
    if obj.contains_key("message")
        && (obj.contains_key("datetime") || obj.contains_key("timestamp"))
    {
        return Ok(Format::TimesketchJsonl);
    }
    Err("json lines that are no timesketch (message + datetime/timestamp), plaso json_line or cloudtrail events".into())
}

fn is_timesketch_csv_header(line: &str) -> bool {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line.as_bytes());
    let Some(Ok(header)) = reader.records().next() else {
        return false;
    };
    let has = |name: &str| header.iter().any(|h| h.trim() == name);
    header.len() >= 2 && has("message") && (has("datetime") || has("timestamp"))
}
