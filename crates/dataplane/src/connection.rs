//! One accepted connection: pick its filter chain (Envoy's filter chain match, for plaintext
//! connections) and hand it to the HTTP connection manager or the TCP proxy, after the TLS
//! handshake where the chain terminates TLS (`downstream_io.rs`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use outrider_model::{Listener, NetworkFilter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::downstream_connections::ConnectionSlot;
use crate::downstream_io::DownstreamIo;
use crate::filter_chain::{ChainRef, select_filter_chain};
use crate::http_server::serve_http;
use crate::tcp_proxy::serve_tcp_proxy;
use crate::tls_stats::TlsCounters;
use crate::worker_context::WorkerContext;

pub(crate) async fn serve_connection(
    context: Rc<WorkerContext>,
    listener: Arc<Listener>,
    stream: TcpStream,
    peer: SocketAddr,
    drained: watch::Receiver<bool>,
    slot: ConnectionSlot,
    tls_counters: Option<Arc<TlsCounters>>,
) {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(_) => return,
    };
    let Some(chain) = select_filter_chain(&listener, local, peer) else {
        tracing::debug!(listener = %listener.name, %peer, "no filter chain matches; closing");
        return;
    };
    let chain = ChainRef { listener, chain };
    match &chain.get().filter {
        NetworkFilter::HttpConnectionManager(_) => {
            let tls_counters = tls_counters.as_deref();
            let connection = (stream, peer, local);
            serve_http(context, chain, connection, drained, slot, tls_counters).await;
        }
        NetworkFilter::TcpProxy(tcp) => {
            let tcp = tcp.clone();
            let filter_chain = chain.get();
            let opened = DownstreamIo::open(
                stream,
                filter_chain.tls.as_ref(),
                filter_chain.handshake_timeout,
                tls_counters.as_deref(),
            );
            let mut drain = drained.clone();
            let downstream = tokio::select! {
                opened = opened => match opened {
                    Ok(io) => io,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed; closing");
                        return;
                    }
                },
                _ = drain.wait_for(|d| *d) => return,
            };
            serve_tcp_proxy(context, &tcp, downstream, peer, drained).await;
            drop(slot);
        }
    }
}
