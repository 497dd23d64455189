//! The HTTP listener: `/healthz`, `/readyz`, `/metrics` (Prometheus), the `/v1` routes
//! over the committed state ([`v1`]) and their OpenAPI document ([`openapi`]). A bearer
//! token is required unless the listener is bound to loopback; refusals are counted.
//! Health, readiness and the OpenAPI document answer without one (kubelet probes carry
//! no token), and so does `/metrics` unless `[api] metrics_auth` asks for it.
//!
//! Nobody can tie the listener up without authenticating: at most
//! [`MAX_CONNECTIONS`] connections (more are closed at once), a request's header must
//! arrive within [`HEADER_TIMEOUT`], a connection lives at most [`CONNECTION_LIFETIME`]
//! (idle keep-alive included), store reads run on the blocking pool, and `/metrics` counts
//! cases from a snapshot refreshed in the background rather than a scan per scrape. On a
//! loopback listener without a token the `Host` header must name the loopback, so a web
//! page cannot reach the API through DNS rebinding.

mod health;
pub mod openapi;
mod stores;
pub mod v1;

pub use health::Health;
pub use stores::{Registration, Stores};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::store::view::StateView;
use crate::telemetry::Metrics;

/// Connections served at once; more are closed as they arrive.
pub const MAX_CONNECTIONS: usize = 256;
/// How long a request's header may take to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may stay open, idle keep-alive included.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);
/// The longest request target (path and query) served.
const MAX_TARGET: usize = 8 << 10;
/// The most header bytes (names and values) served.
const MAX_HEADERS: usize = 16 << 10;

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    access: Arc<Access>,
    view: Option<StateView>,
    /// What registered means for `/v1/inventory` (`[consistency] system_of_record`).
    system_of_record: crate::event::System,
    /// The stores `/metrics` reports on.
    stores: Stores,
    health: Arc<Health>,
}

/// Who may ask what.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The bearer token the `/v1` routes need (none: open, loopback only).
    pub token: Option<String>,
    /// Whether `/metrics` needs the token too.
    pub metrics_need_token: bool,
}

/// Host names a loopback listener answers to.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// Whether a `Host` header names the loopback (any port).
fn loopback_host(host: &str) -> bool {
    let name = match host.rfind(':') {
        Some(i) if !host.ends_with(']') => &host[..i],
        _ => host,
    };
    LOOPBACK_HOSTS.contains(&name.to_ascii_lowercase().as_str())
}

/// Routes that answer without a token: liveness, readiness and the API's description.
const OPEN_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/v1/openapi.json"];

impl Access {
    /// Whether a request for `path` needs the token.
    fn guards(&self, path: &str) -> bool {
        self.token.is_some()
            && !OPEN_ROUTES.contains(&path)
            && (path != "/metrics" || self.metrics_need_token)
    }

    /// Whether an `Authorization` header value presents the token: scheme `Bearer` in
    /// any case, compared in constant time.
    fn admits(&self, authorization: Option<&str>) -> bool {
        let (Some(token), Some(value)) = (&self.token, authorization) else {
            return self.token.is_none();
        };
        let Some((scheme, presented)) = value.split_once(' ') else {
            return false;
        };
        let presented = presented.trim().as_bytes();
        scheme.eq_ignore_ascii_case("bearer")
            && presented.len() == token.len()
            && presented
                .iter()
                .zip(token.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Where to listen and with which token; checks that a non-loopback listener has one.
pub fn bind_address(listen: &str, token: Option<&str>) -> Result<SocketAddr, String> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        format!("api.listen {listen:?} is not an address such as \"127.0.0.1:9464\": {e}")
    })?;
    if !addr.ip().is_loopback() && token.is_none() {
        return Err(format!(
            "api.listen {listen} is not loopback: set api.token or LOCKSTEP_API_TOKEN so that requests need a bearer token"
        ));
    }
    Ok(addr)
}

/// What the API serves besides its access rules.
pub struct Served {
    pub metrics: Arc<Metrics>,
    /// Whether `/readyz` says ready.
    pub ready: Arc<AtomicBool>,
    /// The state the `/v1` routes read (none: 503).
    pub view: Option<StateView>,
    /// The stores whose size, health and cases `/metrics` reports.
    pub stores: Stores,
    /// How `/healthz` judges the pipeline.
    pub health: Health,
    /// What registered means for `/v1/inventory` (`[consistency] system_of_record`).
    pub system_of_record: crate::event::System,
}

/// Serves the API on its own thread until the process exits: health, metrics, and the
/// `/v1` routes over the view `served` has (503 without one).
pub fn spawn(
    addr: SocketAddr,
    access: Access,
    served: Served,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let shared = Shared {
        metrics: served.metrics,
        ready: served.ready,
        access: Arc::new(access),
        view: served.view,
        system_of_record: served.system_of_record,
        stores: served.stores,
        health: Arc::new(served.health),
    };
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the API runtime");
                    return;
                }
            };
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen");
                        return;
                    }
                };
                serve(listener, router(shared)).await;
            });
        })
}

/// Accepts connections until the process exits, within [`MAX_CONNECTIONS`],
/// [`HEADER_TIMEOUT`] and [`CONNECTION_LIFETIME`].
async fn serve(listener: tokio::net::TcpListener, router: Router) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("API connection refused: {MAX_CONNECTIONS} already open");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
            drop(slot);
        });
    }
}

/// Answers a GET of `path` (with its query) from `view` without a listener, exactly as
/// the API would with the default configuration: the CLI's `--state` mode.
pub fn answer(view: &StateView, path: &str) -> anyhow::Result<serde_json::Value> {
    let shared = Shared {
        metrics: Arc::new(Metrics::new()),
        ready: Arc::new(AtomicBool::new(true)),
        access: Arc::default(),
        view: Some(view.clone()),
        system_of_record: crate::config::ConsistencyConfig::default().system_of_record,
        stores: Stores::default(),
        health: Arc::new(Health::new(None)),
    };
    let request = Request::builder()
        .uri(path)
        .body(axum::body::Body::empty())?;
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(async move {
        use tower::ServiceExt;
        let response = router(shared).oneshot(request).await?;
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        let value: serde_json::Value = serde_json::from_slice(&body)?;
        if !status.is_success() {
            match value["error"].as_str() {
                Some(error) => anyhow::bail!("{error}"),
                None => anyhow::bail!("{status}"),
            }
        }
        Ok(value)
    })
}

/// Percent-encodes a path segment or query value (ids hold `/`, `:` and `|`).
pub fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(v1::routes())
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served")
        })
        .layer(middleware::from_fn_with_state(shared.clone(), authorize))
        .layer(middleware::from_fn(within_limits))
        .with_state(shared)
}

/// Refuses, with a JSON body, a request target longer than [`MAX_TARGET`] (414) or
/// headers larger than [`MAX_HEADERS`] (431). Past hyper's own read buffer (about
/// 400 KiB) hyper answers 431 itself, without a body, before any handler runs.
async fn within_limits(request: Request, next: Next) -> Response {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if target > MAX_TARGET {
        return error(
            StatusCode::URI_TOO_LONG,
            &format!("the request target is longer than {MAX_TARGET} bytes"),
        );
    }
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers > MAX_HEADERS {
        return error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            &format!("the request headers are larger than {MAX_HEADERS} bytes"),
        );
    }
    next.run(request).await
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

async fn authorize(State(s): State<Shared>, request: Request, next: Next) -> Response {
    if s.access.token.is_none() {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !host.is_empty() && !loopback_host(host) {
            return error(
                StatusCode::MISDIRECTED_REQUEST,
                "this listener answers only to localhost: set api.token to serve other names",
            );
        }
    }
    if s.access.guards(request.uri().path()) {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !s.access.admits(presented) {
            s.metrics.unauthorized.inc();
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

async fn readyz(State(s): State<Shared>) -> Response {
    if !s.ready.load(Ordering::SeqCst) {
        error(StatusCode::SERVICE_UNAVAILABLE, "starting")
    } else if s.metrics.store_writable.get() == 0 {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the state directory takes no writes (disk full?): consumption paused until it does",
        )
    } else {
        Json(serde_json::json!({"status": "ready"})).into_response()
    }
}

async fn healthz(State(s): State<Shared>) -> Response {
    let now = crate::time::Micros::now().0 as f64 / 1e6;
    match s.health.stalled(&s.metrics, now) {
        None => Json(serde_json::json!({"status": "ok"})).into_response(),
        Some(why) => error(StatusCode::SERVICE_UNAVAILABLE, &why),
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    s.stores.report(&s.metrics);
    s.metrics
        .ready
        .set(i64::from(s.ready.load(Ordering::SeqCst)));
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_listener_needs_a_token() {
        assert!(bind_address("127.0.0.1:9464", None).is_ok());
        assert!(bind_address("[::1]:9464", None).is_ok());
        let err = bind_address("0.0.0.0:9464", None).unwrap_err();
        assert!(err.contains("LOCKSTEP_API_TOKEN"), "{err}");
        assert!(bind_address("0.0.0.0:9464", Some("s3cret")).is_ok());
        assert!(bind_address("localhost", None)
            .unwrap_err()
            .contains("api.listen"));
    }

    #[test]
    fn probes_and_the_api_description_need_no_token_and_metrics_only_if_asked() {
        let access = Access {
            token: Some("s3cret".into()),
            metrics_need_token: false,
        };
        for open in ["/healthz", "/readyz", "/v1/openapi.json", "/metrics"] {
            assert!(!access.guards(open), "{open}");
        }
        for guarded in ["/v1/cases", "/v1/alerts", "/v1/entities/x", "/nope"] {
            assert!(access.guards(guarded), "{guarded}");
        }
        let strict = Access {
            metrics_need_token: true,
            ..access.clone()
        };
        assert!(strict.guards("/metrics"));
        assert!(!Access::default().guards("/v1/cases"), "no token: open");
    }

    #[test]
    fn only_loopback_names_pass_the_host_check() {
        for ok in [
            "localhost",
            "localhost:9464",
            "127.0.0.1:9464",
            "[::1]:9464",
            "LOCALHOST",
        ] {
            assert!(loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:9464",
            "127.0.0.1.nip.io",
            "[::2]:1",
        ] {
            assert!(!loopback_host(bad), "{bad}");
        }
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_exact() {
        let access = Access {
            token: Some("s3cret".into()),
            metrics_need_token: false,
        };
        for ok in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
            assert!(access.admits(Some(ok)), "{ok}");
        }
        for bad in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "Basic s3cret",
            "s3cret",
            "",
        ] {
            assert!(!access.admits(Some(bad)), "{bad}");
        }
        assert!(!access.admits(None));
    }
}
