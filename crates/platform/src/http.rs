//! HTTP serving for the roles that face browsers or webhooks: an axum router
//! on a listener, stopped gracefully by the shared shutdown signal, and the
//! request span every such server opens ([`request_span`]).

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::shutdown::Shutdown;

/// Serves `router` until `shutdown` fires; in-flight requests finish first.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: Shutdown,
    name: &'static str,
) -> anyhow::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, server = name, "HTTP server listening");
    axum::serve(
        listener.tap_io(move |stream| no_delay(stream, name)),
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.fired().await })
    .await
    .with_context(|| format!("HTTP server {name} failed"))
}

/// Sends each answer as soon as it is written rather than when the client
/// has acknowledged the previous one (Nagle's algorithm), as the gRPC
/// servers do (`crate::grpc`).
fn no_delay(stream: &tokio::net::TcpStream, server: &'static str) {
    if let Err(error) = stream.set_nodelay(true) {
        tracing::warn!(%error, server, "could not set TCP_NODELAY on a connection");
    }
}

/// Serves the routers `make_router` builds until `shutdown` fires, on
/// `threads` threads that each run a single-threaded runtime: a
/// thread-per-core server. This runtime accepts the connections and hands
/// them to the threads in turn; everything a request does afterwards (its
/// handler, the gRPC calls the router's clients make, their HTTP/2
/// connections) stays on one thread. `make_router` runs once on each thread,
/// so clients it creates belong to that thread's runtime.
///
/// Why: on a shared multi-threaded runtime a proxied request hops between
/// worker threads several times (the HTTP connection's task, the gRPC
/// channel's buffer task, its HTTP/2 connection task), and each hop wakes a
/// parked thread through the kernel. The cost is a connection's requests
/// staying on its thread: a few busy keep-alive connections on one thread
/// do not spread to the others.
pub async fn serve_on_threads<F>(
    listener: TcpListener,
    threads: usize,
    make_router: F,
    shutdown: Shutdown,
    name: &'static str,
) -> anyhow::Result<()>
where
    F: Fn() -> anyhow::Result<axum::Router> + Send + Sync + 'static,
{
    let address = listener.local_addr()?;
    let make_router = std::sync::Arc::new(make_router);
    let mut inboxes = Vec::with_capacity(threads);
    let mut finished = Vec::with_capacity(threads);
    for index in 0..threads.max(1) {
        let (inbox, handed) = tokio::sync::mpsc::unbounded_channel();
        let (started, ready) = tokio::sync::oneshot::channel();
        let (done, ended) = tokio::sync::oneshot::channel();
        let (make_router, shutdown) = (make_router.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name(format!("{name}-http-{index}"))
            .spawn(move || {
                let result = serving_thread(handed, &*make_router, shutdown, started);
                let _ = done.send(result);
            })
            .with_context(|| format!("starting HTTP thread {index} of {name}"))?;
        // A router that cannot be built (bad configuration) fails the start.
        ready
            .await
            .map_err(|_| anyhow::anyhow!("HTTP thread {index} of {name} ended while starting"))??;
        inboxes.push(inbox);
        finished.push(ended);
    }
    tracing::info!(%address, server = name, threads = inboxes.len(), "HTTP server listening");

    let mut next = 0;
    let accepting = async {
        loop {
            let (stream, remote) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait for some to close
                    // rather than spin.
                    tracing::warn!(%error, server = name, "could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            no_delay(&stream, name);
            // Leaves this runtime's reactor; the serving thread registers it
            // with its own.
            let stream = match stream.into_std() {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, server = name, "could not hand a connection over");
                    continue;
                }
            };
            let thread: &tokio::sync::mpsc::UnboundedSender<_> = &inboxes[next];
            next = (next + 1) % inboxes.len();
            if thread.send((stream, remote)).is_err() {
                return Err::<(), _>(anyhow::anyhow!("an HTTP thread of {name} stopped"));
            }
        }
    };
    let accepted = tokio::select! {
        failed = accepting => failed,
        () = shutdown.fired() => Ok(()),
    };
    drop(inboxes);
    let mut first_error = accepted.err();
    for ended in finished {
        let result = ended
            .await
            .map_err(|_| anyhow::anyhow!("an HTTP thread of {name} panicked"))
            .and_then(|result| result);
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        Some(error) => Err(error.context(format!("HTTP server {name} failed"))),
        None => Ok(()),
    }
}

/// One thread of [`serve_on_threads`]: builds its router, then serves each
/// connection handed to it until `shutdown` fires and its connections have
/// finished their requests.
fn serving_thread(
    mut handed: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, std::net::SocketAddr)>,
    make_router: &(dyn Fn() -> anyhow::Result<axum::Router> + Send + Sync),
    shutdown: Shutdown,
    started: tokio::sync::oneshot::Sender<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = started.send(Err(anyhow::Error::new(error).context("building a runtime")));
            return Ok(());
        }
    };
    runtime.block_on(async move {
        let router = match make_router() {
            Ok(router) => router,
            Err(error) => {
                let _ = started.send(Err(error));
                return Ok(());
            }
        };
        let _ = started.send(Ok(()));
        let connections = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, remote) = tokio::select! {
                next = handed.recv() => match next {
                    Some(connection) => connection,
                    None => break,
                },
                () = shutdown.fired() => break,
            };
            let stream = match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "could not take over a connection");
                    continue;
                }
            };
            let service =
                router
                    .clone()
                    .map_request(move |request: http::Request<hyper::body::Incoming>| {
                        let mut request = request.map(axum::body::Body::new);
                        // What `into_make_service_with_connect_info` gives handlers.
                        request
                            .extensions_mut()
                            .insert(axum::extract::ConnectInfo(remote));
                        request
                    });
            let service = hyper_util::service::TowerToHyperService::new(service);
            let builder =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            let connection = builder
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                .into_owned();
            let connection = connections.watch(connection);
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::trace!(%error, "connection ended with an error");
                }
            });
        }
        // In-flight requests finish; idle keep-alive connections close.
        connections.shutdown().await;
        Ok(())
    })
}

/// The span of one incoming HTTP request (for `tower_http`'s `TraceLayer`
/// `make_span_with`): method, URI and version, as log lines have always
/// shown. When spans are exported, its parent is the caller's W3C
/// `traceparent` header if it sent one (a browser's or a script's
/// instrumentation), so the request joins the caller's trace.
pub fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        version = ?request.version(),
        otel.name = tracing::field::Empty,
        otel.kind = tracing::field::Empty,
    );
    if crate::telemetry::exporting() {
        span.record(
            "otel.name",
            format!("{} {}", request.method(), request.uri().path()),
        );
        span.record("otel.kind", "server");
        crate::trace_context::set_parent_from_http(&span, request.headers());
    }
    span
}
