//! The tokio edge: runs the [`Engine`] over a serial port (or anything that reads and writes).

use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep, timeout_at};
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};

use crate::Error;
use crate::engine::{Engine, Event};
use crate::result::ResultCode;

/// What to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A telephone number, dialled with a prefix such as `ATDT` (tone) or `ATDP` (pulse).
    Phone { prefix: String, number: String },
    /// A cellular packet data connection: the context is defined with the access point name
    /// (3GPP TS 27.007 section 10.1.1, `+CGDCONT`), then `ATD*99#` asks for packet service
    /// (TS 27.007 section 10.2.1.1, the GPRS service code 99).
    Cellular { apn: String },
}

/// The modem's answer to one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The final result code.
    pub code: ResultCode,
    /// Information text lines that came before it.
    pub info: Vec<String>,
}

/// How a dial ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialOutcome {
    /// The modem answered with this result (CONNECT, BUSY, NO ANSWER, ERROR...); `answer`
    /// is everything the modem said, for the call log.
    Answered { code: ResultCode, answer: String },
    /// No result before the dial timeout; the dial was aborted.
    TimedOut,
}

/// The most information text lines kept for one command. A modem that streams lines until
/// the timeout (or a port that is no modem at all, such as a cellular modem's NMEA port) must
/// not grow the reply, and the call log that keeps a dial's answer, without bound.
pub const MAX_INFO_LINES: usize = 64;

/// A modem on a byte stream.
#[derive(Debug)]
pub struct Modem<S> {
    io: S,
    engine: Engine,
}

/// Opens a serial port for a modem: raw 8N1, not exclusive (pppd opens the same tty by name
/// later, while we keep ours open so DTR stays up).
pub fn open_port(device: &Path, baud: u32) -> Result<SerialStream, Error> {
    let path = device.to_string_lossy().into_owned();
    let mut port = tokio_serial::new(path, baud)
        .open_native_async()
        .map_err(|source| Error::Open {
            device: device.to_owned(),
            source,
        })?;
    port.set_exclusive(false).map_err(|source| Error::Open {
        device: device.to_owned(),
        source,
    })?;
    // Whatever the modem said before we came (a late NO CARRIER, RING) must not be taken for
    // the answer to our first command.
    port.clear(tokio_serial::ClearBuffer::Input)
        .map_err(|source| Error::Open {
            device: device.to_owned(),
            source,
        })?;
    Ok(port)
}

impl<S: AsyncRead + AsyncWrite + Unpin> Modem<S> {
    /// Wraps a stream; the engine assumes factory settings until the init strings run.
    pub fn new(io: S) -> Modem<S> {
        Modem {
            io,
            engine: Engine::new(),
        }
    }

    /// The stream, for whoever carries data after CONNECT.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.io
    }

    /// The engine, to see the echo and verbose settings.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Sends one command line and waits for its final result.
    pub async fn command(&mut self, line: &str, limit: Duration) -> Result<Reply, Error> {
        tracing::debug!(command = line, "modem command");
        let bytes = self.engine.command(line);
        self.write(&bytes).await?;
        let deadline = Instant::now() + limit;
        let mut info = Vec::new();
        let mut left_out = 0usize;
        loop {
            let Some(events) = self.read_events(deadline).await? else {
                return Err(Error::Timeout {
                    command: line.to_owned(),
                });
            };
            for event in events {
                match event {
                    Event::Result(ResultCode::Ring) => tracing::debug!("modem: RING"),
                    Event::Result(code) => {
                        if left_out > 0 {
                            info.push(format!("({left_out} more lines left out)"));
                        }
                        return Ok(Reply { code, info });
                    }
                    Event::Echo(text) => tracing::trace!(echo = text, "modem echo"),
                    Event::Info(text) | Event::Overlong(text) => {
                        if info.len() < MAX_INFO_LINES {
                            info.push(text);
                        } else {
                            left_out += 1;
                        }
                    }
                }
            }
        }
    }

    /// Sends a command that must answer OK.
    pub async fn expect_ok(&mut self, line: &str, limit: Duration) -> Result<Reply, Error> {
        let reply = self.command(line, limit).await?;
        if reply.code != ResultCode::Ok {
            return Err(Error::Rejected {
                command: line.to_owned(),
                code: reply.code,
            });
        }
        Ok(reply)
    }

    /// Runs the init strings from config; each must answer OK.
    pub async fn init(&mut self, lines: &[String], limit: Duration) -> Result<(), Error> {
        for line in lines {
            self.expect_ok(line, limit).await?;
        }
        Ok(())
    }

    /// Dials and waits up to `limit` for the result.
    pub async fn dial(
        &mut self,
        target: &DialTarget,
        command_limit: Duration,
        limit: Duration,
    ) -> Result<DialOutcome, Error> {
        let line = match target {
            DialTarget::Phone { prefix, number } => format!("{prefix}{number}"),
            DialTarget::Cellular { apn } => {
                self.expect_ok(&format!("AT+CGDCONT=1,\"IP\",\"{apn}\""), command_limit)
                    .await?;
                "ATD*99#".to_owned()
            }
        };
        match self.command(&line, limit).await {
            Ok(reply) => {
                let mut answer = reply.info.join("\n");
                if !answer.is_empty() {
                    answer.push('\n');
                }
                answer.push_str(&reply.code.to_string());
                Ok(DialOutcome::Answered {
                    code: reply.code,
                    answer,
                })
            }
            Err(Error::Timeout { .. }) => {
                self.abort_dial(command_limit).await?;
                Ok(DialOutcome::TimedOut)
            }
            Err(e) => Err(e),
        }
    }

    /// Abandons a dial in progress: V.250 6.3.1, any character received while dialling aborts
    /// the call. Returns the modem's answer to that: NO CARRIER (or OK) when aborted, CONNECT
    /// when the call got through first, `None` when it said nothing within `limit` (a modem
    /// that was not dialling at all ignores the empty line).
    pub async fn abort_dial(&mut self, limit: Duration) -> Result<Option<ResultCode>, Error> {
        self.write(b"\r").await?;
        let deadline = Instant::now() + limit;
        while let Some(events) = self.read_events(deadline).await? {
            for event in events {
                match event {
                    Event::Result(ResultCode::Ring) => {}
                    Event::Result(code) => return Ok(Some(code)),
                    _ => {}
                }
            }
        }
        Ok(None)
    }

    /// Bytes that arrived right after CONNECT, before the data carrier took over.
    pub fn take_data(&mut self) -> Vec<u8> {
        self.engine.take_data()
    }

    /// Back to command state with the escape sequence: a guard time of silence, `+++`, another
    /// guard time (V.250 leaves the escape to the manufacturer; this is the Hayes form, with
    /// S12 guard time, 1 s by default), then waits for OK.
    pub async fn escape(&mut self, guard: Duration, limit: Duration) -> Result<(), Error> {
        sleep(guard).await;
        self.write(b"+++").await?;
        sleep(guard).await;
        self.engine.back_to_command_mode();
        let deadline = Instant::now() + limit;
        loop {
            let Some(events) = self.read_events(deadline).await? else {
                return Err(Error::Timeout {
                    command: "+++".to_owned(),
                });
            };
            if events
                .iter()
                .any(|e| matches!(e, Event::Result(ResultCode::Ok)))
            {
                return Ok(());
            }
        }
    }

    /// Hangs up from online state: the escape sequence, then `ATH` (V.250 6.3.6).
    pub async fn hangup_by_escape(
        &mut self,
        guard: Duration,
        limit: Duration,
    ) -> Result<(), Error> {
        self.escape(guard, limit).await?;
        self.expect_ok("ATH", limit).await?;
        Ok(())
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.io.write_all(bytes).await.map_err(|source| Error::Io {
            during: "write",
            source,
        })?;
        self.io.flush().await.map_err(|source| Error::Io {
            during: "write",
            source,
        })
    }

    /// Reads once; `None` when the deadline passed first.
    async fn read_events(&mut self, deadline: Instant) -> Result<Option<Vec<Event>>, Error> {
        let mut buf = [0u8; 256];
        match timeout_at(deadline, self.io.read(&mut buf)).await {
            Err(_) => Ok(None),
            Ok(Ok(0)) => Err(Error::Closed),
            Ok(Ok(n)) => {
                let bytes = buf.get(..n).unwrap_or_default();
                tracing::trace!(bytes = ?String::from_utf8_lossy(bytes), "from modem");
                Ok(Some(self.engine.feed(bytes)))
            }
            Ok(Err(source)) => Err(Error::Io {
                during: "read",
                source,
            }),
        }
    }
}

impl Modem<SerialStream> {
    /// Hangs up by dropping DTR for `hold` (V.250 6.2.9, &D2: the modem hangs up and returns to
    /// command state when DTR goes off). Fails on ports with no modem lines, such as a pty.
    pub async fn hangup_by_dtr(&mut self, hold: Duration) -> Result<(), Error> {
        let dtr = |port: &mut SerialStream, on| {
            port.write_data_terminal_ready(on).map_err(|e| Error::Io {
                during: "DTR",
                source: std::io::Error::other(e),
            })
        };
        dtr(&mut self.io, false)?;
        sleep(hold).await;
        dtr(&mut self.io, true)?;
        self.engine.back_to_command_mode();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A modem that streams information text before its result: the reply keeps the first
    /// [`MAX_INFO_LINES`] lines and says how many were left out.
    #[tokio::test]
    async fn streamed_information_text_is_bounded() {
        const LINES: usize = 20_000;
        let (ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let far_end = tokio::spawn(async move {
            let mut command = [0u8; 4];
            theirs.read_exact(&mut command).await.unwrap();
            assert_eq!(&command, b"ATI\r");
            let mut answer = b"\r\nline\r\n".repeat(LINES);
            answer.extend_from_slice(b"\r\nOK\r\n");
            theirs.write_all(&answer).await.unwrap();
            theirs
        });
        let mut modem = Modem::new(ours);
        let reply = modem.command("ATI", Duration::from_secs(30)).await.unwrap();
        assert_eq!(reply.code, ResultCode::Ok);
        assert_eq!(reply.info.len(), MAX_INFO_LINES + 1);
        assert!(reply.info[..MAX_INFO_LINES].iter().all(|l| l == "line"));
        assert_eq!(
            reply.info[MAX_INFO_LINES],
            format!("({} more lines left out)", LINES - MAX_INFO_LINES)
        );
        drop(far_end.await.unwrap());
    }
}
