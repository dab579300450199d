//! `serve_on_threads`, the gateway's thread-per-core HTTP server, over real
//! sockets: connections go to the threads in turn, each thread builds its
//! own router, handlers see the client's address, and stopping lets a
//! request in flight finish.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use platform::Shutdown;
use tokio::net::TcpListener;

/// Answers with the serving thread's name and the address the handler saw.
async fn who(ConnectInfo(client): ConnectInfo<SocketAddr>) -> String {
    let thread = std::thread::current();
    format!("{} {client}", thread.name().unwrap_or("unnamed"))
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    (listener, url)
}

/// A client with a connection of its own (reqwest pools per client).
fn new_connection() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client")
}

#[tokio::test]
async fn connections_are_served_by_each_thread_in_turn() {
    let (listener, url) = listener().await;
    let shutdown = Shutdown::new();
    let built = Arc::new(AtomicUsize::new(0));
    let server = tokio::spawn(platform::http::serve_on_threads(
        listener,
        2,
        {
            let built = built.clone();
            move || {
                built.fetch_add(1, Ordering::SeqCst);
                Ok(Router::new().route("/who", get(who)))
            }
        },
        shutdown.clone(),
        "test",
    ));

    let mut threads = Vec::new();
    for _ in 0..4 {
        let client = new_connection();
        // Two requests on one connection: the second stays on its thread.
        let mut answers = Vec::new();
        for _ in 0..2 {
            let answer = client
                .get(format!("{url}/who"))
                .send()
                .await
                .expect("an answer")
                .text()
                .await
                .expect("a body");
            answers.push(answer);
        }
        assert_eq!(answers[0], answers[1], "one connection, one thread");
        let (thread, client_address) = answers[0].split_once(' ').expect("thread and address");
        let client_address: SocketAddr = client_address.parse().expect("a socket address");
        assert!(
            client_address.ip().is_loopback(),
            "handlers see the client's address, got {client_address}"
        );
        threads.push(thread.to_owned());
    }
    assert_eq!(built.load(Ordering::SeqCst), 2, "one router per thread");
    assert_eq!(
        threads,
        ["test-http-0", "test-http-1", "test-http-0", "test-http-1"],
        "connections are handed to the threads in turn"
    );

    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops")
        .expect("no panic")
        .expect("a clean stop");
}

#[tokio::test]
async fn stopping_lets_a_request_in_flight_finish() {
    let (listener, url) = listener().await;
    let shutdown = Shutdown::new();
    let (arrived, mut request_arrived) = tokio::sync::mpsc::unbounded_channel::<()>();
    let server = tokio::spawn(platform::http::serve_on_threads(
        listener,
        2,
        move || {
            let arrived = arrived.clone();
            Ok(Router::new().route(
                "/slow",
                get(move || {
                    let _ = arrived.send(());
                    async {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        "finished"
                    }
                }),
            ))
        },
        shutdown.clone(),
        "test",
    ));

    let request = tokio::spawn(new_connection().get(format!("{url}/slow")).send());
    request_arrived
        .recv()
        .await
        .expect("the request reaches its handler");
    shutdown.trigger();

    let response = request
        .await
        .expect("no panic")
        .expect("the request in flight is answered");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("a body"), "finished");
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server stops once the request is answered")
        .expect("no panic")
        .expect("a clean stop");
    assert!(
        new_connection()
            .get(format!("{url}/slow"))
            .send()
            .await
            .is_err(),
        "a stopped server takes no new connections"
    );
}

#[tokio::test]
async fn a_router_that_cannot_be_built_fails_the_start() {
    let (listener, _) = listener().await;
    let started = platform::http::serve_on_threads(
        listener,
        2,
        || anyhow::bail!("CATALOG_URL is not a valid URL"),
        Shutdown::new(),
        "test",
    );
    let error = tokio::time::timeout(Duration::from_secs(10), started)
        .await
        .expect("the start fails promptly")
        .expect_err("no server without its router");
    assert!(
        format!("{error:#}").contains("CATALOG_URL is not a valid URL"),
        "the reason is kept: {error:#}"
    );
}
