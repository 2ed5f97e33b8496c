//! Line-oriented reading of text evidence with bounded memory: a line longer than the
//! limit is reported (and skipped) instead of being buffered whole, so a multi-gigabyte
//! file without newlines cannot exhaust memory.

use std::io::{self, BufRead};

/// The longest line a text parser accepts.
pub const MAX_LINE_LEN: usize = 4 * 1024 * 1024;

/// One line of a text member, with its number (from 1) and byte offset.
#[derive(Debug)]
pub struct NumberedLine<'a> {
    /// Line number, from 1.
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
    /// The line.
    pub line: Line<'a>,
}

/// The content of one line.
#[derive(Debug)]
pub enum Line<'a> {
    /// A line (without its `\n` / `\r\n`).
    Text(&'a [u8]),
    /// A line longer than the limit, skipped; its length.
    TooLong(u64),
}

/// Iterates the lines of a reader, numbering them from 1 and tracking their byte offsets.
#[derive(Debug)]
pub struct Lines<R> {
    reader: R,
    buf: Vec<u8>,
    max_len: usize,
    number: u64,
    next_offset: u64,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `reader` of at most `max_len` bytes.
    pub fn new(reader: R, max_len: usize) -> Lines<R> {
        Lines {
            reader,
            buf: Vec::new(),
            max_len,
            number: 0,
            next_offset: 0,
        }
    }

    /// The next line, `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<NumberedLine<'_>>> {
        self.buf.clear();
        let mut len: u64 = 0;
        let mut too_long = false;
        let mut saw_any = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                break;
            }
            saw_any = true;
            let (piece, done) = match memchr_newline(available) {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            len += piece.len() as u64;
            if !too_long {
                if self.buf.len() + piece.len() > self.max_len {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(piece);
                }
            }
            let consumed = done.unwrap_or(available.len());
            self.reader.consume(consumed);
            if done.is_some() {
                len += 1;
                break;
            }
        }
        if !saw_any {
            return Ok(None);
        }
        self.number += 1;
        let offset = self.next_offset;
        self.next_offset += len;
        let line = if too_long {
            Line::TooLong(len)
        } else {
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            Line::Text(&self.buf)
        };
        Ok(Some(NumberedLine {
            number: self.number,
            offset,
            line,
        }))
    }
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

/// Whether a line holds only whitespace (such lines are not records).
pub fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(input: &[u8], max: usize) -> Vec<(u64, u64, Option<Vec<u8>>)> {
        let mut lines = Lines::new(io::BufReader::with_capacity(3, input), max);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            let text = match l.line {
                Line::Text(t) => Some(t.to_vec()),
                Line::TooLong(_) => None,
            };
            out.push((l.number, l.offset, text));
        }
        out
    }

    #[test]
    fn lines_are_numbered_with_offsets_and_crlf_stripped() {
        let got = collect(b"ab\r\ncd\n\nlast", 100);
        assert_eq!(
            got,
            vec![
                (1, 0, Some(b"ab".to_vec())),
                (2, 4, Some(b"cd".to_vec())),
                (3, 7, Some(b"".to_vec())),
                (4, 8, Some(b"last".to_vec())),
            ]
        );
    }

    #[test]
    fn an_overlong_line_is_reported_and_the_next_one_still_read() {
        let got = collect(b"short\nthis line is too long\nok\n", 10);
        assert_eq!(got[0].2.as_deref(), Some(&b"short"[..]));
        assert_eq!(got[1].2, None);
        assert_eq!(got[2], (3, 28, Some(b"ok".to_vec())));
    }
}
