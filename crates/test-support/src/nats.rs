//! Private `nats-server` processes, for tests that take NATS away (an
//! outage) or need more than the one node the machine runs (replicated
//! streams). Each server has its own port and store directory; both are
//! kept across [`NatsServer::stop`] and [`NatsServer::restart`], so what
//! JetStream had persisted is there again afterwards, as after a real
//! restart. Dropping a server kills it and removes its store.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// The `nats-server` binary: `NATS_SERVER_BIN`, else Debian's or a local
/// install (`make test` installs Debian's).
pub fn server_binary() -> String {
    std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| {
        [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "/usr/local/bin/nats-server",
        ]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server")
        .to_owned()
    })
}

/// One JetStream-enabled `nats-server` of a test's own.
pub struct NatsServer {
    port: u16,
    args: Vec<String>,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    /// A single server on a free port; returns once it accepts connections.
    pub async fn start() -> NatsServer {
        let mut server = NatsServer::unstarted();
        server.restart().await;
        server
    }

    /// A server whose port and store are chosen but which does not run yet
    /// (until [`NatsServer::restart`]): clients connecting first see NATS
    /// down.
    pub fn unstarted() -> NatsServer {
        NatsServer::prepare(crate::free_port(), Vec::new())
    }

    fn prepare(port: u16, extra: Vec<String>) -> NatsServer {
        let store =
            std::env::temp_dir().join(format!("bookmyseat-nats-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&store).expect("creating the NATS store directory");
        let mut args: Vec<String> = ["-js", "-a", "127.0.0.1", "-p"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        args.push(port.to_string());
        args.push("-sd".to_owned());
        args.push(store.display().to_string());
        args.extend(extra);
        NatsServer {
            port,
            args,
            store,
            child: None,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server, as a crash or a lost node would; clients see their
    /// connection drop.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server (again) on the same port over the same store, and
    /// waits (at most 20 s) until it accepts connections.
    pub async fn restart(&mut self) {
        self.stop().await;
        let child = Command::new(server_binary())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); `make test` installs nats-server, or set NATS_SERVER_BIN",
                    server_binary()
                )
            });
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server {:?} exited at start: {status}", self.args);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nats-server on {address} did not accept connections within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Several JetStream servers routed into one cluster, as production runs
/// NATS (three nodes): what replicated streams need.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// `size` servers that route to one another; returns once each accepts
    /// client connections (JetStream elects its meta leader a moment later:
    /// callers retry their first JetStream call, e.g. with
    /// [`crate::eventually`]).
    pub async fn start(size: usize) -> NatsCluster {
        let cluster_name = format!("c{}", uuid::Uuid::new_v4().simple());
        let route_ports: Vec<u16> = (0..size).map(|_| crate::free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut servers = Vec::with_capacity(size);
        for (i, route_port) in route_ports.iter().enumerate() {
            let extra = vec![
                "--server_name".to_owned(),
                format!("{cluster_name}-n{i}"),
                "--cluster_name".to_owned(),
                cluster_name.clone(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{route_port}"),
                "--routes".to_owned(),
                routes.clone(),
            ];
            let mut server = NatsServer::prepare(crate::free_port(), extra);
            server.restart().await;
            servers.push(server);
        }
        NatsCluster { servers }
    }

    /// Every node's client URL, comma-separated (as `NATS_URL` takes them).
    pub fn url(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }
}
