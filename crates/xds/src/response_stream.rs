//! The responses of a gRPC streaming call, read without waiting for the server's response
//! headers before sending.
//!
//! tonic's streaming call resolves only once the server has sent its response headers. grpc-go
//! sends them with a handler's first message, and a handler that only receives
//! (`StreamEvents`) sends none until it returns; a client that waits for them before sending
//! its next message waits forever. A [`ResponseStream`] keeps the call's future and is polled
//! beside the sends, so requests flow from the start and the headers are taken whenever they
//! come.

use std::future::Future;
use std::pin::Pin;

type Opening<T> = Pin<
    Box<dyn Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>> + Send>,
>;

enum CallState<T> {
    /// Waiting for the response headers.
    Opening(Opening<T>),
    Open(Box<tonic::Streaming<T>>),
    /// The call failed; its error was returned once.
    Failed,
}

/// A streaming call's responses; see the module docs.
pub struct ResponseStream<T> {
    state: CallState<T>,
}

impl<T: Send + 'static> ResponseStream<T> {
    /// Takes the call (`client.method(request)`, with the client moved in). Nothing is sent
    /// until the stream is first polled.
    pub fn new(
        call: impl Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>
        + Send
        + 'static,
    ) -> Self {
        ResponseStream {
            state: CallState::Opening(Box::pin(call)),
        }
    }

    /// Whether the server's response headers have arrived.
    pub fn headers_received(&self) -> bool {
        matches!(self.state, CallState::Open(_))
    }

    /// What the stream does next: its headers arrive, a response arrives, or it ends.
    /// Cancel-safe: dropping the future keeps the call and what it has read, so it can sit in a
    /// `select!` beside the sends.
    pub async fn next(&mut self) -> Result<StreamEvent<T>, tonic::Status> {
        match &mut self.state {
            CallState::Opening(call) => match call.await {
                Ok(response) => {
                    self.state = CallState::Open(Box::new(response.into_inner()));
                    Ok(StreamEvent::Headers)
                }
                Err(status) => {
                    self.state = CallState::Failed;
                    Err(status)
                }
            },
            CallState::Open(stream) => Ok(match stream.message().await? {
                Some(message) => StreamEvent::Message(message),
                None => StreamEvent::End,
            }),
            CallState::Failed => Ok(StreamEvent::End),
        }
    }

    /// The next response, after the headers if they have not come yet. `Ok(None)`: the server
    /// ended the stream. Cancel-safe, as [`ResponseStream::next`].
    pub async fn message(&mut self) -> Result<Option<T>, tonic::Status> {
        loop {
            match self.next().await? {
                StreamEvent::Headers => {}
                StreamEvent::Message(message) => return Ok(Some(message)),
                StreamEvent::End => return Ok(None),
            }
        }
    }
}

/// One step of a [`ResponseStream`].
#[derive(Debug)]
pub enum StreamEvent<T> {
    /// The server's response headers: it has taken the call.
    Headers,
    Message(T),
    /// The server ended the stream with an OK status.
    End,
}
