//! Response bodies produced chunk by chunk on tokio's blocking pool.
//!
//! Reading leg files, resampling, mixing and encoding are blocking work, done by a
//! [`ChunkSource`] one chunk at a time. [`StreamBody`] is the `http_body::Body` over one: each time
//! the server asks for a frame it moves the source into `spawn_blocking`, which produces one
//! chunk and hands the source back. So a slow client holds no thread (only the source's few
//! buffers, waiting for the next poll), at most one chunk is in flight per response, and a client
//! that goes away drops the body and with it the source, after at most the chunk in progress.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::error::{Error, Result};

/// Produces a body one chunk at a time, by blocking work (file reads, DSP, encoding).
pub trait ChunkSource: Send + 'static {
    /// The next chunk, or `None` at the end. Empty chunks are allowed (they are skipped).
    fn next_chunk(&mut self) -> Result<Option<Bytes>>;

    /// The body's exact total length, when it is known before the first chunk
    /// (`Content-Length`).
    fn exact_len(&self) -> Option<u64>;
}

impl ChunkSource for Box<dyn ChunkSource> {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        (**self).next_chunk()
    }

    fn exact_len(&self) -> Option<u64> {
        (**self).exact_len()
    }
}

/// A source of no bytes (the body of a 416).
#[derive(Debug, Clone, Copy, Default)]
pub struct Empty;

impl ChunkSource for Empty {
    fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }

    fn exact_len(&self) -> Option<u64> {
        Some(0)
    }
}

/// An `http_body::Body` of [`Bytes`] over a [`ChunkSource`]; `axum::body::Body::new` takes it.
/// Must be polled inside a tokio runtime.
pub struct StreamBody {
    state: State,
    /// Bytes still to come, when the length is known.
    remaining: Option<u64>,
}

/// A source handed back by the blocking task, with the chunk it produced.
type Produced = (Box<dyn ChunkSource>, Result<Option<Bytes>>);

enum State {
    Idle(Box<dyn ChunkSource>),
    Busy(JoinHandle<Produced>),
    Done,
}

impl StreamBody {
    pub fn new(source: impl ChunkSource) -> StreamBody {
        let remaining = source.exact_len();
        StreamBody {
            state: if remaining == Some(0) {
                State::Done
            } else {
                State::Idle(Box::new(source))
            },
            remaining,
        }
    }

    pub fn empty() -> StreamBody {
        StreamBody::new(Empty)
    }
}

impl std::fmt::Debug for StreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state {
            State::Idle(_) => "idle",
            State::Busy(_) => "producing a chunk",
            State::Done => "done",
        };
        f.debug_struct("StreamBody")
            .field("state", &state)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>>>> {
        loop {
            // Taken out, and put back by each arm that is not finished.
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(mut source) => {
                    self.state = State::Busy(tokio::task::spawn_blocking(move || {
                        let chunk = source.next_chunk();
                        (source, chunk)
                    }));
                }
                State::Busy(mut task) => {
                    let joined = match Pin::new(&mut task).poll(cx) {
                        Poll::Pending => {
                            self.state = State::Busy(task);
                            return Poll::Pending;
                        }
                        Poll::Ready(joined) => joined,
                    };
                    let (source, chunk) = match joined {
                        Ok(done) => done,
                        Err(error) => return Poll::Ready(Some(Err(Error::BodyTask(error)))),
                    };
                    match chunk {
                        Ok(Some(bytes)) if bytes.is_empty() => self.state = State::Idle(source),
                        Ok(Some(bytes)) => {
                            if let Some(remaining) = &mut self.remaining {
                                *remaining = remaining.saturating_sub(bytes.len() as u64);
                            }
                            if self.remaining != Some(0) {
                                self.state = State::Idle(source);
                            }
                            return Poll::Ready(Some(Ok(Frame::data(bytes))));
                        }
                        Ok(None) => return Poll::Ready(None),
                        Err(error) => return Poll::Ready(Some(Err(error))),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(remaining) => SizeHint::with_exact(remaining),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    struct Counting {
        chunks: Vec<&'static [u8]>,
        exact: bool,
    }

    impl ChunkSource for Counting {
        fn next_chunk(&mut self) -> Result<Option<Bytes>> {
            if self.chunks.is_empty() {
                return Ok(None);
            }
            Ok(Some(Bytes::from_static(self.chunks.remove(0))))
        }

        fn exact_len(&self) -> Option<u64> {
            self.exact
                .then(|| self.chunks.iter().map(|c| c.len() as u64).sum())
        }
    }

    #[tokio::test]
    async fn chunks_arrive_in_order_and_empty_ones_are_skipped() {
        let body = StreamBody::new(Counting {
            chunks: vec![b"ab", b"", b"cde"],
            exact: true,
        });
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
        let collected = body.collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abcde");

        let unknown = StreamBody::new(Counting {
            chunks: vec![b"xy"],
            exact: false,
        });
        assert_eq!(http_body::Body::size_hint(&unknown).exact(), None);
        assert_eq!(&unknown.collect().await.unwrap().to_bytes()[..], b"xy");
    }

    #[tokio::test]
    async fn an_error_ends_the_body() {
        struct Failing;
        impl ChunkSource for Failing {
            fn next_chunk(&mut self) -> Result<Option<Bytes>> {
                Err(Error::NoLegs)
            }
            fn exact_len(&self) -> Option<u64> {
                None
            }
        }
        let error = StreamBody::new(Failing).collect().await.unwrap_err();
        assert!(matches!(error, Error::NoLegs));
    }
}
