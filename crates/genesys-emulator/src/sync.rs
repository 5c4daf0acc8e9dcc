//! Two small synchronisation helpers shared by every module (no emulator
//! types here, so that any module may use them without import circles).

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// Locks a mutex, carrying on if a panicking thread poisoned it (the data
/// are plain records that stay consistent between statements).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Resolves once the watched flag is (or becomes) true, or its sender is gone.
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}
