//! The loop every ADS stream runs, SotW or delta: requests in, snapshot and behaviour changes,
//! commands from tests (drop, raw responses), until one side goes away. What differs between the
//! two protocols is behind [`StreamProtocol`].

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::shared::{Shared, StreamCommand};

/// The half of a stream's responses channel that the loop writes to.
pub(crate) type Outbound<R> = mpsc::UnboundedSender<Result<R, tonic::Status>>;

pub(crate) trait StreamProtocol: Default {
    type Request;
    type Response;

    /// Takes one request; an error ends the stream with that status.
    fn on_request(
        &mut self,
        shared: &Shared,
        id: u64,
        request: Self::Request,
        outbound: &Outbound<Self::Response>,
    ) -> Result<(), tonic::Status>;

    /// The snapshot or the behaviour changed: send what is now due.
    fn on_change(&mut self, shared: &Shared, id: u64, outbound: &Outbound<Self::Response>);

    /// A raw response from a test, if it is of this protocol (others are ignored).
    fn on_raw(
        &mut self,
        shared: &Shared,
        id: u64,
        command: StreamCommand,
        outbound: &Outbound<Self::Response>,
    );
}

/// Drives one stream until the client goes away or the server drops it.
pub(crate) async fn run<P: StreamProtocol>(
    shared: Arc<Shared>,
    id: u64,
    mut inbound: tonic::Streaming<P::Request>,
    outbound: Outbound<P::Response>,
    mut commands: mpsc::UnboundedReceiver<StreamCommand>,
) {
    let mut protocol = P::default();
    let mut snapshots = shared.snapshot.subscribe();
    let mut behaviors = shared.behavior.subscribe();
    let reason = loop {
        tokio::select! {
            message = inbound.message() => match message {
                Ok(Some(request)) => {
                    if let Err(status) = protocol.on_request(&shared, id, request, &outbound) {
                        let reason = format!("closed by the server: {}", status.message());
                        let _ = outbound.send(Err(status));
                        break reason;
                    }
                }
                Ok(None) => break "client closed the stream".to_string(),
                Err(status) => break format!("client stream error: {status}"),
            },
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break "server stopped".to_string();
                }
                protocol.on_change(&shared, id, &outbound);
            }
            changed = behaviors.changed() => {
                if changed.is_err() {
                    break "server stopped".to_string();
                }
                protocol.on_change(&shared, id, &outbound);
            }
            command = commands.recv() => match command {
                Some(StreamCommand::Drop(status)) => {
                    let reason = format!("dropped by the server: {}", status.message());
                    let _ = outbound.send(Err(status));
                    break reason;
                }
                Some(raw) => protocol.on_raw(&shared, id, raw, &outbound),
                None => break "server stopped".to_string(),
            },
            () = outbound.closed() => break "client went away".to_string(),
        }
    };
    shared.close_stream(id, reason);
}
