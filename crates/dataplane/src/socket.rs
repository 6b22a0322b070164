//! Listening sockets: one per worker per listener, all bound to the same address with
//! SO_REUSEPORT so the kernel spreads new connections over the workers without any hand-off.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Envoy's default `tcp_backlog_size`.
pub const DEFAULT_BACKLOG: u32 = 1024;

/// Binds a non-blocking listening socket with SO_REUSEADDR and SO_REUSEPORT.
pub fn bind_reuseport(address: SocketAddr, backlog: u32) -> io::Result<std::net::TcpListener> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
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
) -> io::Result<(SocketAddr, Vec<std::net::TcpListener>)> {
    let first = bind_reuseport(address, backlog)?;
    let bound = first.local_addr()?;
    let mut sockets = Vec::with_capacity(count.max(1));
    sockets.push(first);
    for _ in 1..count {
        sockets.push(bind_reuseport(bound, backlog)?);
    }
    Ok((bound, sockets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_one_port_even_when_asked_for_port_zero() {
        let (bound, sockets) =
            bind_for_workers("127.0.0.1:0".parse().expect("addr"), 16, 3).expect("bind");
        assert_ne!(bound.port(), 0);
        assert_eq!(sockets.len(), 3);
        for socket in &sockets {
            assert_eq!(socket.local_addr().expect("addr"), bound);
        }
    }
}
