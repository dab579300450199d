//! One HTTP/1.1 keep-alive connection, owned by one worker.
//!
//! Each worker stands for one browser tab: it keeps its own connection open
//! and sends one request at a time on it, as HTTP/1.1 allows. Driving
//! hyper's connection directly (rather than a pooled client) keeps the load
//! generator's own cost per request small, which matters when it shares two
//! cores with the services it measures; URIs are parsed once, up front.
//!
//! A connection that failed or timed out is dropped and a new one is opened
//! for the next request, so one bad answer never poisons the rest of a run.

use std::time::Duration;

use http::header::{ACCEPT_ENCODING, CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::target::Target;

/// A worker's connection to an HTTP server on this machine.
pub struct Http1Connection {
    target: Target,
    host: HeaderValue,
    timeout: Duration,
    accept_gzip: bool,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Http1Connection {
    /// A connection to `target`, opened on first use. Each request may take
    /// `timeout`, connecting included. With `accept_gzip` requests say
    /// `Accept-Encoding: gzip`, as browsers do.
    pub fn new(target: &Target, timeout: Duration, accept_gzip: bool) -> anyhow::Result<Self> {
        Ok(Self {
            host: HeaderValue::from_str(&target.authority)?,
            target: target.clone(),
            timeout,
            accept_gzip,
            sender: None,
        })
    }

    /// From now on, each request may take `timeout`.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// `GET uri`, read to the end. Anything but `200 OK` is an error.
    pub async fn get(&mut self, uri: &Uri) -> Result<Bytes, String> {
        let (status, body) = self.send(Method::GET, uri, &[], None).await?;
        if status == StatusCode::OK {
            Ok(body)
        } else {
            Err(format!("HTTP {status}"))
        }
    }

    /// `GET path`, its body parsed as JSON (for setting a scenario up, not
    /// for measuring).
    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<serde_json::Value> {
        let body = self
            .get(&path.parse()?)
            .await
            .map_err(|e| anyhow::anyhow!("GET {}{path}: {e}", self.target.url))?;
        serde_json::from_slice(&body)
            .map_err(|e| anyhow::anyhow!("GET {path} did not answer JSON: {e}"))
    }

    /// Any request, read to the end, with extra headers (a session's cookie
    /// and CSRF token) and an optional JSON body; the caller judges the
    /// status.
    pub async fn send(
        &mut self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        json: Option<Bytes>,
    ) -> Result<(StatusCode, Bytes), String> {
        let (status, _, body) = self.send_full(method, uri, headers, json).await?;
        Ok((status, body))
    }

    /// [`Self::send`], also returning the response headers (for setting up
    /// sessions, not for measuring).
    pub async fn send_full(
        &mut self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        json: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        match tokio::time::timeout(self.timeout, self.exchange(method, uri, headers, json)).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }

    /// One request and its response. The sender is taken out for the
    /// duration and put back only after a complete exchange, so a failure or
    /// a timeout (which drops this future) leaves no half-used connection.
    async fn exchange(
        &mut self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        json: Option<Bytes>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let mut sender = match self.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        sender
            .ready()
            .await
            .map_err(|e| format!("connection closed: {e}"))?;
        let mut request = Request::builder()
            .method(method)
            .uri(uri.clone())
            .header(HOST, self.host.clone());
        if self.accept_gzip {
            request = request.header(ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in headers {
            request = request.header(name, value);
        }
        if json.is_some() {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        let request = request
            .body(Full::new(json.unwrap_or_default()))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = response.status();
        let response_headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the body failed: {e}"))?
            .to_bytes();
        self.sender = Some(sender);
        Ok((status, response_headers, body))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = TcpStream::connect(self.target.address)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.target.address))?;
        stream
            .set_nodelay(true)
            .map_err(|e| format!("cannot set TCP_NODELAY: {e}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP/1.1 handshake failed: {e}"))?;
        // The connection task ends when the sender is dropped or the server
        // closes; its error, if any, shows up on the next request.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
