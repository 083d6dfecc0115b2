//! Where a package's bytes go: a file beside its final name (`….part`), optionally through an
//! age encryptor (X25519 recipient, the `age` crate: the maintained Rust implementation of the
//! format, rather than our own X25519 + ChaCha20-Poly1305 framing), counting and hashing what
//! reaches the disk, so the catalog can give the package's size and SHA-256.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// What reaches the file: counted and hashed.
struct Counted {
    file: BufWriter<File>,
    bytes: u64,
    sha256: Sha256,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.file.write(buf)?;
        self.bytes += written as u64;
        self.sha256.update(&buf[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

enum Output {
    Plain(Counted),
    Encrypted(age::stream::StreamWriter<Counted>),
}

/// A package file being written.
pub(crate) struct Sink {
    path: PathBuf,
    output: Output,
}

/// The package file once written: its size and SHA-256 (hex), as on disk.
pub(crate) struct Written {
    pub(crate) bytes: u64,
    pub(crate) sha256: String,
}

impl Sink {
    /// Creates `path` (which must not exist), encrypting to `recipient` when given.
    pub(crate) fn create(path: &Path, recipient: Option<&age::x25519::Recipient>) -> Result<Sink> {
        let io_error = |source| Error::ExportFile {
            path: path.to_owned(),
            source,
        };
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(io_error)?;
        let counted = Counted {
            file: BufWriter::with_capacity(256 * 1024, file),
            bytes: 0,
            sha256: Sha256::new(),
        };
        let output = match recipient {
            None => Output::Plain(counted),
            Some(recipient) => {
                let encryptor = age::Encryptor::with_recipients(std::iter::once(
                    recipient as &dyn age::Recipient,
                ))?;
                Output::Encrypted(encryptor.wrap_output(counted).map_err(io_error)?)
            }
        };
        Ok(Sink {
            path: path.to_owned(),
            output,
        })
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.output {
            Output::Plain(out) => out.write_all(bytes),
            Output::Encrypted(out) => out.write_all(bytes),
        }
        .map_err(|source| Error::ExportFile {
            path: self.path.clone(),
            source,
        })
    }

    /// Ends the encryption (its last chunk and tag), flushes and syncs the file.
    pub(crate) fn finish(self) -> Result<Written> {
        let io_error = |source| Error::ExportFile {
            path: self.path.clone(),
            source,
        };
        let mut counted = match self.output {
            Output::Plain(out) => out,
            Output::Encrypted(out) => out.finish().map_err(io_error)?,
        };
        counted.flush().map_err(io_error)?;
        let file = counted
            .file
            .into_inner()
            .map_err(|e| io_error(e.into_error()))?;
        file.sync_all().map_err(io_error)?;
        Ok(Written {
            bytes: counted.bytes,
            sha256: hex::encode(counted.sha256.finalize()),
        })
    }
}
