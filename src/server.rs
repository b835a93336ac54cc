//! Starts the gateway: Pingora's proxy workers on `server.listen`, and a small side runtime
//! for the admin listener, the policy watcher and housekeeping.
//!
//! Shutdown: SIGTERM and SIGINT both stop the listeners, let requests in flight finish, and
//! exit 0 as soon as none are left or `shutdown_grace` has passed, whichever comes first.
//! (Pingora's own SIGTERM path sleeps the whole grace period, and its SIGINT drops requests.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};

use crate::admin::{self, Admin};
use crate::limits::auth_failures::AuthFailures;
use crate::limits::{Clock, Limiter, LocalLimiter, Subject};
use crate::policy::is_oauth_id;
use crate::policy::store::Store;
use crate::proxy::Gateway;
use crate::proxy::sessions::SessionSeal;
use crate::telemetry::inflight::Inflight;
use crate::telemetry::key_gauges::KeyGauges;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::usage::Usage;

/// A task that runs beside the gateway on the side runtime (the demo's MCP server).
pub type SideTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs the gateway until a shutdown signal; returns when it has drained.
pub fn run(
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    side_tasks: Vec<SideTask>,
) -> anyhow::Result<()> {
    let policy = store.current();
    let server_spec = policy.server.clone();
    let inflight = Arc::new(AtomicUsize::new(0));
    let ready = Arc::new(AtomicBool::new(false));
    let limiter = Arc::new(LocalLimiter::default());
    let auth_failures = Arc::new(AuthFailures::default());
    metrics.register(Box::new(Inflight::new(store.clone(), limiter.clone())));
    let usage = Arc::new(Usage::new(Clock::monotonic()));
    usage.sync(&policy);
    metrics.register(Box::new(KeyGauges::new(store.clone(), usage.clone())));

    // Bind the admin listener now, so a port in use fails start-up with a clear error.
    let admin_listener = std::net::TcpListener::bind(server_spec.admin_listen)
        .with_context(|| format!("cannot listen on admin_listen {}", server_spec.admin_listen))?;
    admin_listener.set_nonblocking(true)?;
    // Pingora binds its listener later, inside `run`; check the port is free first.
    drop(
        std::net::TcpListener::bind(server_spec.listen)
            .with_context(|| format!("cannot listen on {}", server_spec.listen))?,
    );

    let side = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("mcpwarden-side")
        .enable_all()
        .build()?;
    let admin = Admin {
        store: store.clone(),
        metrics: metrics.clone(),
        usage: usage.clone(),
        ready: ready.clone(),
    };
    {
        let _guard = side.enter();
        let listener = tokio::net::TcpListener::from_std(admin_listener)?;
        side.spawn(async move {
            if let Err(e) = admin::serve(listener, admin).await {
                tracing::error!("admin listener stopped: {e}");
            }
        });
        let watched = store.clone();
        side.spawn(async move {
            if let Err(e) = crate::policy::watch::watch(watched).await {
                tracing::error!("cannot watch the policy file; reload with SIGHUP only: {e}");
            }
        });
        side.spawn(admin::wait_until_listening(server_spec.listen, ready));
        side.spawn(housekeeping(
            store.clone(),
            limiter.clone(),
            auth_failures.clone(),
            usage.clone(),
        ));
        for task in side_tasks {
            side.spawn(task);
        }
    }

    let grace = server_spec.shutdown_grace;
    let conf = ServerConf {
        threads: server_spec
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        grace_period_seconds: Some(grace.as_secs_f64().ceil() as u64),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let gateway = Gateway {
        store,
        metrics,
        usage,
        seal: Arc::new(SessionSeal::random()),
        inflight: inflight.clone(),
        limiter,
        auth_failures,
    };
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, gateway);
    service.add_tcp(&server_spec.listen.to_string());
    server.add_service(service);
    tracing::info!(listen = %server_spec.listen, admin = %server_spec.admin_listen, "mcpwarden serving");
    server.run(RunArgs {
        shutdown_signal: Box::new(DrainOnSignal { inflight, grace }),
    });
    side.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Keeps limiter and usage state in step with the policy and with the keys in use: a key's
/// state goes (and a new key's usage record comes) within a second of a reload, and idle
/// limiter state (full buckets, nothing in flight) goes every minute. Scores every key's
/// usage once a second, which logs a spike when one begins. Fetches the OAuth issuers' key
/// sets at start and after a reload that names new ones, so no token waits for them, and
/// refreshes them every minute once they are older than ten minutes.
async fn housekeeping<L: Limiter>(
    store: Arc<Store>,
    limiter: Arc<L>,
    failures: Arc<AuthFailures>,
    usage: Arc<Usage>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut generation = store.generation();
    prefetch(&store);
    for n in 1u64.. {
        tick.tick().await;
        if store.generation() != generation {
            generation = store.generation();
            prefetch(&store);
            let policy = store.current();
            let live: std::collections::HashSet<Subject> =
                policy.keys.values().map(|k| Subject::of_key(k)).collect();
            limiter.retain(&|s| {
                live.contains(s) || (is_oauth_id(&s.key) && policy.admits_clients_of(&s.workspace))
            });
            usage.sync(&policy);
        }
        usage.tick();
        if n % 60 == 0 {
            refresh_stale(&store);
            limiter.shrink();
            failures.shrink();
            // Drops a record a request made while its key was being removed.
            usage.sync(&store.current());
        }
    }
}

/// Fetches, in the background, the remote key sets of the policy in force that are not cached
/// yet (a set inherited from the previous policy is not fetched again).
fn prefetch(store: &Store) {
    if let Some(oauth) = store.current().oauth.clone() {
        tokio::spawn(async move { oauth.prefetch().await });
    }
}

/// Refetches, in the background, the remote key sets older than
/// [`crate::auth::oauth::REFRESH_MAX_AGE_SECS`], so keys an issuer removed stop being trusted.
fn refresh_stale(store: &Store) {
    if let Some(oauth) = store.current().oauth.clone() {
        tokio::spawn(async move { oauth.refresh_stale(crate::policy::store::now()).await });
    }
}

/// SIGTERM or SIGINT: a graceful stop that exits as soon as nothing is in flight.
struct DrainOnSignal {
    inflight: Arc<AtomicUsize>,
    grace: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for DrainOnSignal {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("signal handler");
        let mut int = signal(SignalKind::interrupt()).expect("signal handler");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining requests in flight"),
            _ = int.recv() => tracing::info!("SIGINT: draining requests in flight"),
        }
        let inflight = self.inflight.clone();
        let deadline = Instant::now() + self.grace;
        // Pingora now stops its listeners and sleeps the grace period; this thread ends the
        // process as soon as the last request in flight has finished.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            while inflight.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let left = inflight.load(Ordering::Acquire);
            if left > 0 {
                tracing::warn!(
                    left,
                    "shutdown grace period over; dropping requests in flight"
                );
            }
            tracing::info!("mcpwarden stopped");
            crate::telemetry::access_log::flush();
            std::process::exit(0);
        });
        ShutdownSignal::GracefulTerminate
    }
}
