//! Bridges between async byte streams (HTTP bodies) and the image store's blocking
//! `Read`/`Write` APIs, which run in `spawn_blocking`.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::sync::mpsc;

/// A stream of body chunks.
pub type ByteStream = std::pin::Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + 'static>>;

/// A blocking reader fed by an async stream (read it only from a blocking thread).
#[derive(Debug)]
pub struct StreamReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl StreamReader {
    /// Starts a task that forwards `stream` into the reader. Call inside a tokio runtime.
    pub fn new(mut stream: ByteStream) -> StreamReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).await.is_err() {
                    break;
                }
            }
        });
        StreamReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl Read for StreamReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A blocking writer whose bytes come out of the paired stream (write it only from a
/// blocking thread). Writing fails with `BrokenPipe` once the stream is dropped.
#[derive(Debug)]
pub struct ChannelWriter {
    tx: mpsc::Sender<io::Result<Bytes>>,
}

/// A writer and the stream that yields what is written to it.
pub fn channel_writer() -> (ChannelWriter, ByteStream) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (ChannelWriter { tx }, Box::pin(stream))
}

impl ChannelWriter {
    /// Ends the stream with an error (the HTTP body is then cut short).
    pub fn fail(self, e: io::Error) {
        let _ = self.tx.blocking_send(Err(e));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the receiver went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reader_and_writer_carry_bytes_across_threads() {
        let chunks: Vec<io::Result<Bytes>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from_static(b"world")),
        ];
        let mut r = StreamReader::new(Box::pin(futures_util::stream::iter(chunks)));
        let text = tokio::task::spawn_blocking(move || {
            let mut s = String::new();
            r.read_to_string(&mut s).map(|_| s)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(text, "hello world");

        let (mut w, mut s) = channel_writer();
        let h = tokio::task::spawn_blocking(move || {
            let mut bw = io::BufWriter::new(&mut w);
            bw.write_all(b"abc")?;
            bw.flush()
        });
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        h.await.unwrap().unwrap();
        assert_eq!(got, b"abc");
    }
}
