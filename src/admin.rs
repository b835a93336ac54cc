//! The admin listener: `/metrics`, `/healthz`, `/readyz`.
//!
//! It runs on its own small runtime, apart from the proxy's workers, so a scrape never
//! competes with traffic and an overloaded proxy still answers health checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::policy::store::Store;
use crate::telemetry::metrics::Metrics;

#[derive(Clone)]
pub struct Admin {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    /// Set once the proxy listener accepts connections.
    pub ready: Arc<AtomicBool>,
}

pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(admin)
}

/// Serves the admin endpoints on `listener` until the runtime stops.
pub async fn serve(listener: tokio::net::TcpListener, admin: Admin) -> std::io::Result<()> {
    axum::serve(listener, router(admin)).await
}

async fn metrics(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        admin.metrics.render(),
    )
}

async fn readyz(State(admin): State<Admin>) -> impl IntoResponse {
    if admin.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n")
    }
}

/// Marks the gateway ready once `listen` accepts a connection (Pingora binds its listeners
/// after `run` starts, so the only honest signal is a successful connect).
pub async fn wait_until_listening(listen: SocketAddr, ready: Arc<AtomicBool>) {
    loop {
        if tokio::net::TcpStream::connect(listen).await.is_ok() {
            ready.store(true, Ordering::Release);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
