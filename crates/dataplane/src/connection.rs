//! One accepted connection: pick its filter chain (Envoy's filter chain match, for plaintext
//! connections) and hand it to the HTTP connection manager or the TCP proxy.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use outrider_model::{Listener, NetworkFilter};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::downstream_connections::ConnectionSlot;
use crate::filter_chain::{ChainRef, select_filter_chain};
use crate::http_server::serve_http;
use crate::tcp_proxy::serve_tcp_proxy;
use crate::worker_context::WorkerContext;

pub(crate) async fn serve_connection(
    context: Rc<WorkerContext>,
    listener: Arc<Listener>,
    stream: TcpStream,
    peer: SocketAddr,
    drained: watch::Receiver<bool>,
    slot: ConnectionSlot,
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
            serve_http(context, chain, stream, peer, local, drained, slot).await;
        }
        NetworkFilter::TcpProxy(tcp) => {
            let tcp = tcp.clone();
            serve_tcp_proxy(context, &tcp, stream, peer, drained).await;
            drop(slot);
        }
    }
}
