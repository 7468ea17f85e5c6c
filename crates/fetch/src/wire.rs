//! Line I/O shared by the SMTP and POP3 clients: CRLF lines with a length cap, over tokio.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::Error;

/// RFC 5321 4.5.3.1.5 caps a reply line at 512 octets; POP3 (RFC 1939 3) at 512 for
/// responses. Message lines are longer: RFC 5322 2.1.1 allows 998 plus CRLF, and real mail
/// breaks that, so message data gets a far larger cap.
pub const MAX_LINE: usize = 64 * 1024;

/// A line-oriented connection.
#[derive(Debug)]
pub struct Conn {
    peer: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    timeout: Duration,
}

impl Conn {
    /// Connects to `addr` (`host:port`).
    pub async fn connect(addr: &str, timeout: Duration) -> Result<Conn, Error> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout {
                peer: addr.to_owned(),
                during: "connect".into(),
            })?
            .map_err(|source| Error::Io {
                peer: addr.to_owned(),
                source,
            })?;
        let (r, w) = stream.into_split();
        Ok(Conn {
            peer: addr.to_owned(),
            reader: BufReader::new(r),
            writer: w,
            timeout,
        })
    }

    /// The peer's address, for messages.
    pub fn peer(&self) -> &str {
        &self.peer
    }

    /// Reads one line without its CRLF (a bare LF also ends it).
    pub async fn read_line(&mut self) -> Result<Vec<u8>, Error> {
        let mut line = Vec::new();
        let read = async {
            loop {
                let buf = self.reader.fill_buf().await?;
                if buf.is_empty() {
                    return Ok::<bool, std::io::Error>(false);
                }
                let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (buf.len(), false),
                };
                if line.len() + take <= MAX_LINE {
                    line.extend_from_slice(&buf[..take]);
                }
                self.reader.consume(take);
                if done {
                    return Ok(true);
                }
            }
        };
        let complete = tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| Error::Timeout {
                peer: self.peer.clone(),
                during: "read".into(),
            })?
            .map_err(|source| Error::Io {
                peer: self.peer.clone(),
                source,
            })?;
        if !complete {
            return Err(Error::Closed {
                peer: self.peer.clone(),
            });
        }
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        Ok(line)
    }

    /// Writes bytes as they are.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let write = self.writer.write_all(bytes);
        tokio::time::timeout(self.timeout, write)
            .await
            .map_err(|_| Error::Timeout {
                peer: self.peer.clone(),
                during: "write".into(),
            })?
            .map_err(|source| Error::Io {
                peer: self.peer.clone(),
                source,
            })
    }

    /// Writes a command line and its CRLF.
    pub async fn command(&mut self, line: &str) -> Result<(), Error> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.write(&bytes).await
    }
}
