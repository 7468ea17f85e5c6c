//! Line I/O shared by the SMTP and POP3 clients: CRLF lines with a length cap, over tokio, in
//! plain text or TLS.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::Error;
use crate::tls::{handshake_error, server_name};

/// RFC 5321 4.5.3.1.5 caps a reply line at 512 octets; POP3 (RFC 1939 3) at 512 for
/// responses. Message lines are longer: RFC 5322 2.1.1 allows 998 plus CRLF, and real mail
/// breaks that, so message data gets a far larger cap.
pub const MAX_LINE: usize = 64 * 1024;

/// The socket under a connection.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

// Both kinds are Unpin, so pinning through the enum needs no projection.
impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A line-oriented connection.
#[derive(Debug)]
pub struct Conn {
    peer: String,
    stream: BufReader<Stream>,
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
        Ok(Conn {
            peer: addr.to_owned(),
            stream: BufReader::new(Stream::Plain(stream)),
            timeout,
        })
    }

    /// Connects to `addr` and does the TLS handshake at once (implicit TLS, RFC 8314).
    pub async fn connect_tls(
        addr: &str,
        tls: Arc<rustls::ClientConfig>,
        timeout: Duration,
    ) -> Result<Conn, Error> {
        Conn::connect(addr, timeout).await?.start_tls(tls).await
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream.get_ref(), Stream::Tls(_))
    }

    /// Turns a plain connection into TLS: after `STLS` (RFC 2595 section 4) or `STARTTLS`
    /// answered positively, or at once for implicit TLS. The server's certificate must be valid
    /// for the host of the address connected to.
    pub async fn start_tls(self, tls: Arc<rustls::ClientConfig>) -> Result<Conn, Error> {
        // Whatever the server sent after its go-ahead arrived in plain text and could have
        // been injected by anyone on the path (CVE-2011-0411 and its POP3 cousins): it must
        // not be read as if it came through TLS.
        if !self.stream.buffer().is_empty() {
            return Err(Error::Protocol {
                peer: self.peer,
                why: "sent data in plain text after agreeing to start TLS: refused".into(),
            });
        }
        let Stream::Plain(tcp) = self.stream.into_inner() else {
            return Err(Error::Protocol {
                peer: self.peer,
                why: "TLS was started twice".into(),
            });
        };
        let name = server_name(&self.peer)?;
        let handshake = TlsConnector::from(tls).connect(name, tcp);
        let stream = tokio::time::timeout(self.timeout, handshake)
            .await
            .map_err(|_| Error::Timeout {
                peer: self.peer.clone(),
                during: "TLS handshake".into(),
            })?
            .map_err(|e| handshake_error(&self.peer, &e))?;
        Ok(Conn {
            peer: self.peer,
            stream: BufReader::new(Stream::Tls(Box::new(stream))),
            timeout: self.timeout,
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
                let buf = self.stream.fill_buf().await?;
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
                self.stream.consume(take);
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
        // TLS keeps records in rustls until flushed.
        let stream = self.stream.get_mut();
        let write = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
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
