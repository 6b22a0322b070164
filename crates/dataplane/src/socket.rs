//! Listening sockets: one per worker per listener, all bound to the same address with
//! SO_REUSEPORT so the kernel spreads new connections over the workers without any hand-off.

use std::io;
use std::net::SocketAddr;

use outrider_model::TcpKeepalive;
use socket2::{Domain, Protocol, Socket, Type};

/// Envoy's default `tcp_backlog_size`.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Binds a non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT, and the listener's
/// TCP keepalive, which accepted connections inherit (Linux), so no call per connection.
pub fn bind_reuseport(
    address: SocketAddr,
    backlog: u32,
    keepalive: Option<&TcpKeepalive>,
) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if let Some(keepalive) = keepalive {
        crate::pool::connect::set_keepalive_on(&socket, keepalive)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

/// Binds `count` sockets for one listener. Port 0 is resolved by the first bind, and the others
/// join that port, so every worker serves the same address.
pub fn bind_for_workers(
    address: SocketAddr,
    backlog: u32,
    count: usize,
    keepalive: Option<&TcpKeepalive>,
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = bind_reuseport(address, backlog, keepalive)?;
    let bound = first.local_addr()?;
    let mut sockets = Vec::with_capacity(count.max(1));
    sockets.push(first);
    for _ in 1..count {
        sockets.push(bind_reuseport(bound, backlog, keepalive)?);
    }
    Ok((bound, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_one_port_even_when_asked_for_port_zero() {
        let (bound, sockets) =
            bind_for_workers("127.0.0.1:0".parse().expect("addr"), 16, 3, None).expect("bind");
        assert_ne!(bound.port(), 0);
        assert_eq!(sockets.len(), 3);
        for socket in &sockets {
            assert_eq!(socket.local_addr().expect("addr"), bound);
        }
    }

    #[test]
    fn accepted_connections_inherit_the_listeners_keepalive() {
        let keepalive = TcpKeepalive {
            probes: Some(4),
            time: Some(std::time::Duration::from_secs(60)),
            interval: Some(std::time::Duration::from_secs(7)),
        };
        let (bound, sockets) = bind_for_workers(
            "127.0.0.1:0".parse().expect("addr"),
            16,
            1,
            Some(&keepalive),
        )
        .expect("bind");
        let _client = std::net::TcpStream::connect(bound).expect("connect");
        sockets[0].set_nonblocking(false).expect("blocking accept");
        let (accepted, _) = sockets[0].accept().expect("accept");
        let socket = socket2::SockRef::from(&accepted);
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
            std::time::Duration::from_secs(60)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            std::time::Duration::from_secs(7)
        );
        assert_eq!(socket.tcp_keepalive_retries().expect("TCP_KEEPCNT"), 4);
    }
}
