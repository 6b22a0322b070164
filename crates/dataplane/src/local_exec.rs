//! The executor hyper gets for the tasks it spawns.

/// Runs hyper's tasks (HTTP/2 streams) on this worker's `LocalSet`: they may hold the worker's
/// `Rc` state, and never move to another thread.
#[derive(Clone, Copy)]
pub(crate) struct LocalExec;

impl<F> hyper::rt::Executor<F> for LocalExec
where
    F: Future + 'static,
{
    fn execute(&self, future: F) {
        tokio::task::spawn_local(future);
    }
}
