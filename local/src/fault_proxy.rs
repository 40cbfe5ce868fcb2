//! [`FaultProxy`] is a TCP proxy that sits between a function and a real
//! service (Redis, SQS, PostgreSQL) and injects the faults the fan path must
//! survive, without touching the code under test:
//!
//! | mode | what the client sees |
//! |---|---|
//! | [`Fault::None`] | the service, transparently |
//! | [`Fault::Refuse`] | connection refused (nothing listens) |
//! | [`Fault::Blackhole`] | connects, but the request never reaches the service and nothing comes back |
//! | [`Fault::DropResponses`] | the request reaches the service, the answer never comes back |
//! | [`Fault::Delay`] | every chunk either way waits this long |
//!
//! [`FaultProxy::reset_all`] cuts every open connection, as `CLIENT KILL` or
//! a service restart would. It binds loopback only.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The fault applied to new and open connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    None,
    Refuse,
    Blackhole,
    DropResponses,
    Delay(Duration),
}

/// A fault-injecting TCP proxy on 127.0.0.1.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: Arc<Mutex<SocketAddr>>,
    fault: watch::Sender<Fault>,
    shared: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    listener: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
}

impl FaultProxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        let addr = listener.local_addr()?;
        let (fault, _) = watch::channel(Fault::None);
        let proxy = Self {
            addr,
            upstream: Arc::new(Mutex::new(upstream)),
            fault,
            shared: Arc::new(Mutex::new(Shared::default())),
        };
        proxy.listen(listener);
        Ok(proxy)
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Switches the fault. `Refuse` closes the listening socket and cuts open
    /// connections; leaving it listens again on the same port.
    pub fn set(&self, fault: Fault) {
        let previous = self.fault.send_replace(fault);
        if fault == Fault::Refuse && previous != Fault::Refuse {
            let mut shared = self.shared.lock().unwrap();
            if let Some(l) = shared.listener.take() {
                l.abort();
            }
            shared.connections.drain(..).for_each(|c| c.abort());
        } else if previous == Fault::Refuse && fault != Fault::Refuse {
            // The port was ours a moment ago; SO_REUSEADDR lets us take it back.
            let listener = bind(self.addr).expect("rebind the proxy port");
            self.listen(listener);
        }
    }

    /// Sends new connections to `upstream` from now on, as a DNS name does
    /// when a failover moves it to another node. Open connections stay
    /// where they are until cut ([`FaultProxy::reset_all`]).
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.upstream.lock().unwrap() = upstream;
    }

    /// Cuts every open connection (the service sees them close; the client
    /// sees a reset), as `CLIENT KILL` or a restart would.
    pub fn reset_all(&self) {
        self.shared.lock().unwrap().connections.drain(..).for_each(|c| c.abort());
    }

    fn listen(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let fault = self.fault.subscribe();
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = *upstream.lock().unwrap();
                let conn = tokio::spawn(serve(client, to, fault.clone()));
                let mut s = shared.lock().unwrap();
                s.connections.retain(|c| !c.is_finished());
                s.connections.push(conn);
            }
        });
        self.shared.lock().unwrap().listener = Some(task);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let mut shared = self.shared.lock().unwrap();
        if let Some(l) = shared.listener.take() {
            l.abort();
        }
        shared.connections.drain(..).for_each(|c| c.abort());
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, fault: watch::Receiver<Fault>) {
    if *fault.borrow() == Fault::Blackhole {
        let mut sink = [0u8; 4096];
        while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, fault.clone(), Direction::Request);
    let down = pump(server_read, client_write, fault, Direction::Response);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Request,
    Response,
}

async fn pump(
    mut from: impl AsyncReadExt + Unpin,
    mut to: impl AsyncWriteExt + Unpin,
    fault: watch::Receiver<Fault>,
    direction: Direction,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let current = *fault.borrow();
        match current {
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::DropResponses if direction == Direction::Response => continue,
            Fault::Blackhole => continue,
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
