//! A stand-in for our own MX: a minimal SMTP server on loopback that records each message with
//! its envelope, and refuses unknown local users with 550 as `postroom mail` does.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// The running sink.
pub struct Sink {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn addr(arg: &str) -> String {
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.rfind('>').unwrap_or(arg.len());
    arg[start..end].to_ascii_lowercase()
}

impl Sink {
    /// Listens on `port` (0 for any); `users` are the addresses it accepts.
    pub async fn start(port: u16, users: &[&str]) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        let store = Arc::clone(&messages);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let store = Arc::clone(&store);
                let users = users.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut r = BufReader::new(r);
                    let _ = w.write_all(b"220 sink.test ESMTP\r\n").await;
                    let (mut from, mut to) = (String::new(), Vec::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_owned();
                        let upper = cmd.to_ascii_uppercase();
                        let reply: String =
                            if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                                "250-sink.test\r\n250 8BITMIME\r\n".into()
                            } else if upper.starts_with("MAIL FROM:") {
                                from = addr(&cmd[10..]);
                                to.clear();
                                "250 ok\r\n".into()
                            } else if upper.starts_with("RCPT TO:") {
                                let a = addr(&cmd[8..]);
                                if users.contains(&a) {
                                    to.push(a);
                                    "250 ok\r\n".into()
                                } else {
                                    "550 5.1.1 no such user\r\n".into()
                                }
                            } else if upper == "DATA" {
                                let _ = w.write_all(b"354 go\r\n").await;
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    let l = line.strip_prefix('.').unwrap_or(&line);
                                    data.push_str(l);
                                }
                                store.lock().unwrap().push(Received {
                                    from: from.clone(),
                                    to: std::mem::take(&mut to),
                                    data,
                                });
                                "250 2.0.0 stored\r\n".into()
                            } else if upper == "QUIT" {
                                let _ = w.write_all(b"221 bye\r\n").await;
                                return;
                            } else {
                                "250 ok\r\n".into()
                            };
                        let _ = w.write_all(reply.as_bytes()).await;
                    }
                });
            }
        });
        Sink {
            port,
            messages,
            task,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.messages.lock().unwrap().clone()
    }
}
