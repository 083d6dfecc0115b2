//! Where a leg's audio is read from: the node's disk, or the object storage bucket once it
//! was uploaded there (and its local copy removed, or the leg recorded by another node). The
//! audio code reads both the same way, by positioned reads on tokio's blocking pool.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use callvault_objects::{BlockingObject, Objects};

/// A leg's WAV, wherever it lives.
#[derive(Clone, Debug)]
pub enum LegAudio {
    /// A file on this node's disk.
    File(PathBuf),
    /// An object in the bucket.
    Object { objects: Objects, key: String },
}

impl LegAudio {
    /// What names it in errors and logs: the path, or the object's key.
    pub fn shown(&self) -> PathBuf {
        match self {
            LegAudio::File(path) => path.clone(),
            LegAudio::Object { key, .. } => PathBuf::from(key),
        }
    }

    /// Opens it for positioned reads. Blocking: on tokio's blocking pool (an object's length
    /// is asked of the bucket through the runtime's handle).
    pub(crate) fn open(&self) -> io::Result<Source> {
        match self {
            LegAudio::File(path) => Ok(Source::File(File::open(path)?)),
            LegAudio::Object { objects, key } => {
                let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
                BlockingObject::open(objects, key, runtime)
                    .map(Source::Object)
                    .map_err(object_error)
            }
        }
    }

    /// Whether it is there (an export checks every leg before its first byte).
    pub(crate) fn check(&self) -> io::Result<()> {
        self.open().map(drop)
    }
}

impl From<PathBuf> for LegAudio {
    fn from(path: PathBuf) -> LegAudio {
        LegAudio::File(path)
    }
}

impl From<&Path> for LegAudio {
    fn from(path: &Path) -> LegAudio {
        LegAudio::File(path.to_owned())
    }
}

impl From<&PathBuf> for LegAudio {
    fn from(path: &PathBuf) -> LegAudio {
        LegAudio::File(path.clone())
    }
}

impl From<&LegAudio> for LegAudio {
    fn from(audio: &LegAudio) -> LegAudio {
        audio.clone()
    }
}

/// An opened leg.
#[derive(Debug)]
pub(crate) enum Source {
    File(File),
    Object(BlockingObject),
}

impl Source {
    pub(crate) fn len(&self) -> io::Result<u64> {
        match self {
            Source::File(file) => Ok(file.metadata()?.len()),
            Source::Object(object) => Ok(object.len()),
        }
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Source::File(file) => file.read_exact_at(buf, offset),
            Source::Object(object) => object.read_exact_at(buf, offset),
        }
    }
}

/// An object that is not there reads as a missing file (404 `file_missing`, as on disk).
fn object_error(error: callvault_objects::Error) -> io::Error {
    match error {
        callvault_objects::Error::NotFound { .. } => {
            io::Error::new(io::ErrorKind::NotFound, error.to_string())
        }
        error => io::Error::other(error),
    }
}
