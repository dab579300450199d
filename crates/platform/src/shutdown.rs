//! One shutdown signal for a whole process.
//!
//! Every server and background task holds a clone of [`Shutdown`] and stops
//! when it fires. The signal fires on SIGTERM (Kubernetes), Ctrl-C, or when a
//! caller (a test, a failed sibling role) triggers it. Firing is idempotent.

use tokio_util::sync::CancellationToken;

/// A cloneable handle to the process-wide shutdown signal.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Fires the signal: every holder's [`Shutdown::fired`] completes.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once the signal has fired.
    pub async fn fired(&self) {
        self.token.cancelled().await
    }

    /// Fires the signal when the process receives SIGTERM or Ctrl-C.
    pub fn trigger_on_os_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = os_signal() => {
                    tracing::info!("shutdown signal received; finishing in-flight work");
                    this.trigger();
                }
                _ = this.fired() => {}
            }
        });
    }
}

async fn os_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_clone_sees_the_trigger() {
        let shutdown = Shutdown::new();
        let clone = shutdown.clone();
        assert!(!clone.is_triggered());
        shutdown.trigger();
        clone.fired().await;
        assert!(clone.is_triggered());
    }
}
