//! The admin listener: `/metrics`, `/healthz`, `/readyz`, `/usage` and `/usage.json`.
//!
//! It runs on its own small runtime, apart from the proxy's workers, so a scrape never
//! competes with traffic and an overloaded proxy still answers health checks.

mod page;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::policy::store::{Store, now};
use crate::telemetry::metrics::Metrics;
use crate::telemetry::usage::Usage;
use crate::telemetry::usage::report::Report;

#[derive(Clone)]
pub struct Admin {
    pub store: Arc<Store>,
    pub metrics: Arc<Metrics>,
    pub usage: Arc<Usage>,
    /// Set once the proxy listener accepts connections.
    pub ready: Arc<AtomicBool>,
}

pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/usage", get(usage_page))
        .route("/usage.json", get(usage_json))
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

impl Admin {
    fn report(&self) -> Report {
        Report::build(
            &self.usage,
            &self.store.current(),
            self.store.generation(),
            &self.store.status(),
            now(),
        )
    }
}

async fn usage_json(State(admin): State<Admin>) -> impl IntoResponse {
    let body = serde_json::to_string(&admin.report()).expect("a report serializes");
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
}

async fn usage_page(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                page::CONTENT_SECURITY_POLICY,
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        page::render(&admin.report()),
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
