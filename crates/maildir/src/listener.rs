//! The accept loop that the IMAP and POP3 listeners share: admission by the
//! [`ConnectionLimiter`], a refusal line for clients over the limit, and a stop signal.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::access::{ConnectionLimiter, ConnectionSlot};

/// Accepts connections until `stop` turns true. Each admitted connection is handed to `serve`
/// with its slot, and the future `serve` returns runs as its own task; a client over the limit
/// is sent `refusal` (a protocol's negative greeting) and closed, or closed without a word when
/// `refusal` is None. Implicit-TLS ports pass None: their client expects a TLS handshake, so a
/// plaintext line reads as garbage, and a handshake per refused connection is the CPU a limit
/// is there to save.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    connections: &Arc<ConnectionLimiter>,
    refusal: Option<&'static [u8]>,
    stop: &watch::Receiver<bool>,
    mut serve: F,
) -> std::io::Result<()>
where
    F: FnMut(TcpStream, SocketAddr, ConnectionSlot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut stopping) => return Ok(()),
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: wait rather than spin.
                tracing::warn!(protocol, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(slot) = connections.admit(peer_ip(peer)) else {
            tracing::info!(protocol, %peer, "too many connections; refused");
            // Not awaited: a refused client gets no task and no wait, and the line fits any
            // send buffer.
            if let Some(refusal) = refusal {
                let _ = tcp.try_write(refusal);
            }
            continue;
        };
        tokio::spawn(serve(tcp, peer, slot));
    }
}

/// The client's address as limits count it: an IPv4 client on an IPv6 socket is its IPv4
/// address.
pub fn peer_ip(peer: SocketAddr) -> IpAddr {
    match peer.ip() {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        ip => ip,
    }
}

/// Resolves once `postroom mail` is stopping. (The watch guard is dropped here, so the future
/// stays Send.)
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
