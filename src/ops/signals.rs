//! The signals that stop the runtime (SIGHUP, which reloads it, is in reload.rs).

/// Turns SIGTERM and Ctrl-C into the runtime's shutdown signal.
pub async fn stop_on_signal(tx: tokio::sync::watch::Sender<bool>) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let _ = tx.send(true);
}
