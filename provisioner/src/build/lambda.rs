//! Lambda deployment packages for `provided.al2023`: a zip holding one executable entry
//! `bootstrap` (<https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html>: the
//! runtime runs the `bootstrap` file of the package).
//!
//! Reproducible: a fixed timestamp (1980-01-01, the earliest zip time), fixed permissions
//! (regular file, 0755), one entry, a fixed compression level, no extra fields. The same
//! binary always gives the same bytes, so the content hash alone decides whether anything
//! is uploaded or updated.

use std::io::Write;

/// Name of the executable Lambda runs in a `provided.*` runtime.
pub const BOOTSTRAP: &str = "bootstrap";

/// Building the zip failed (only on an I/O error of the in-memory writer).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the Lambda zip: {0}")]
pub struct ZipError(String);

/// The zip of one Lambda function: `bootstrap` holding `binary`.
pub fn lambda_zip(binary: &[u8]) -> Result<Vec<u8>, ZipError> {
    let err = |e: &dyn std::fmt::Display| ZipError(e.to_string());
    let mut buf = std::io::Cursor::new(Vec::with_capacity(binary.len() / 2));
    {
        let mut zip = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .compression_level(Some(6))
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o755)
            .large_file(false);
        zip.start_file(BOOTSTRAP, opts).map_err(|e| err(&e))?;
        zip.write_all(binary).map_err(|e| err(&e))?;
        zip.finish().map_err(|e| err(&e))?;
    }
    Ok(buf.into_inner())
}

/// The `bootstrap` of a Lambda zip (to check what a given zip holds).
pub fn bootstrap_of(zip_bytes: &[u8]) -> Result<Vec<u8>, ZipError> {
    let err = |e: &dyn std::fmt::Display| ZipError(e.to_string());
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).map_err(|e| err(&e))?;
    let mut f = z
        .by_name(BOOTSTRAP)
        .map_err(|e| ZipError(format!("no `{BOOTSTRAP}` entry: {e}")))?;
    let mut out = Vec::new();
    std::io::copy(&mut f, &mut out).map_err(|e| err(&e))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_binary_same_bytes_and_one_executable_bootstrap() {
        let binary: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let a = lambda_zip(&binary).unwrap();
        let b = lambda_zip(&binary).unwrap();
        assert_eq!(a, b);
        let mut other = binary.clone();
        other[1000] ^= 1;
        assert_ne!(a, lambda_zip(&other).unwrap());

        let mut z = zip::ZipArchive::new(std::io::Cursor::new(a.clone())).unwrap();
        assert_eq!(z.len(), 1);
        let f = z.by_index(0).unwrap();
        assert_eq!(f.name(), "bootstrap");
        assert_eq!(f.unix_mode().map(|m| m & 0o7777), Some(0o755));
        assert!(f.is_file());
        drop(f);
        assert_eq!(bootstrap_of(&a).unwrap(), binary);
    }

    #[test]
    fn a_zip_without_bootstrap_is_an_error() {
        assert!(bootstrap_of(b"not a zip").is_err());
    }
}
