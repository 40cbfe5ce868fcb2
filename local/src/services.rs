//! Private services: a `redis-server` and a PostgreSQL cluster that are
//! children of the drill or a test, on free loopback ports, so they can be
//! restarted, flushed and killed without touching anything this process did
//! not start (the machine's own Redis and PostgreSQL are never used). Either
//! can run with TLS (certificates from [`TestCertificates`]) and a password,
//! as ElastiCache with in-transit encryption and AUTH, or RDS, would.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A free loopback port (the OS picks it; it is free again when we return).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut ready: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if ready().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{what} did not come up within {limit:?}"))
}

fn log_file(path: &Path) -> Stdio {
    std::fs::OpenOptions::new().create(true).append(true).open(path).map(Stdio::from).unwrap_or_else(|_| Stdio::null())
}

/// A `redis-server` of the drill's own, keeping its data in `dir` across a
/// restart (`SHUTDOWN SAVE`), as an ElastiCache node with persistence would.
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    tls: Option<TestCertificates>,
    password: Option<String>,
    /// More `redis-server` arguments (a cluster node's).
    extra: Vec<String>,
    child: Option<Child>,
}

impl PrivateRedis {
    pub async fn start(dir: PathBuf) -> Result<Self, String> {
        Self::start_with(dir, None, None).await
    }

    /// A server that speaks only TLS (with `tls`) and requires `password`.
    pub async fn start_with(
        dir: PathBuf,
        tls: Option<TestCertificates>,
        password: Option<String>,
    ) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut redis = Self { port: free_port(), dir, tls, password, extra: Vec::new(), child: None };
        redis.spawn().await?;
        Ok(redis)
    }

    /// A plain server on `port` with more arguments (a cluster node's,
    /// see [`crate::cluster`]).
    pub async fn start_on(dir: PathBuf, port: u16, extra: &[String]) -> Result<Self, String> {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut redis = Self { port, dir, tls: None, password: None, extra: extra.to_vec(), child: None };
        redis.spawn().await?;
        Ok(redis)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URL without the password (`rediss://` when TLS is on).
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        format!("{scheme}://{}", self.addr())
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => command.args(["--port", &port]),
            Some(t) => command
                .args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                .arg("--tls-cert-file")
                .arg(&t.server_cert)
                .arg("--tls-key-file")
                .arg(&t.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&t.ca_cert),
        };
        if let Some(p) = &self.password {
            command.args(["--requirepass", p]);
        }
        command.args(&self.extra);
        let child = command
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(log_file(&self.dir.join("redis.log")))
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        self.child = Some(child);
        wait_until("redis-server", Duration::from_secs(10), || async { self.command(&["PING"]).await.is_ok() }).await
    }

    /// One command on a fresh connection (the drill's own clients must not
    /// share the connections a fault kills).
    pub async fn command(&self, args: &[&str]) -> Result<redis::Value, String> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(self.url()).map_err(|e| e.to_string())?;
        if let Some(p) = &self.password {
            let settings = info.redis_settings().clone().set_password(p);
            info = info.set_redis_settings(settings);
        }
        let client = match &self.tls {
            Some(t) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates { client_tls: None, root_cert: Some(t.ca_pem()?) },
            ),
            None => redis::Client::open(info),
        }
        .map_err(|e| e.to_string())?;
        let mut conn = tokio::time::timeout(Duration::from_secs(2), client.get_multiplexed_async_connection())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query_async(&mut conn).await.map_err(|e| e.to_string())
    }

    /// `CLIENT KILL TYPE normal`: every client connection is cut.
    pub async fn kill_clients(&self) -> Result<i64, String> {
        match self.command(&["CLIENT", "KILL", "TYPE", "normal"]).await? {
            redis::Value::Int(n) => Ok(n),
            other => Err(format!("CLIENT KILL answered {other:?}")),
        }
    }

    /// `FLUSHALL`: the data is gone, as after a failover without persistence.
    pub async fn flush(&self) -> Result<(), String> {
        self.command(&["FLUSHALL"]).await.map(drop)
    }

    /// Saves, stops and starts the server again with its data; returns how
    /// long it was down.
    pub async fn restart_with_data(&mut self) -> Result<Duration, String> {
        let down = Instant::now();
        // The server closes the connection as it exits, so the reply is an error.
        let _ = self.command(&["SHUTDOWN", "SAVE"]).await;
        if let Some(mut child) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
        self.spawn().await?;
        Ok(down.elapsed())
    }

    /// Writes a snapshot now (`SAVE`) and keeps a copy at `to`.
    pub async fn snapshot(&self, to: &Path) -> Result<(), String> {
        self.command(&["SAVE"]).await?;
        std::fs::copy(self.dir.join("dump.rdb"), to).map(drop).map_err(|e| format!("copy the snapshot: {e}"))
    }

    /// Stops the server without saving and starts it from the snapshot at
    /// `from`, as a node that comes back from an older backup would: what
    /// was written since is gone. Returns how long it was down.
    pub async fn restart_from_snapshot(&mut self, from: &Path) -> Result<Duration, String> {
        let down = Instant::now();
        let _ = self.command(&["SHUTDOWN", "NOSAVE"]).await;
        if let Some(mut child) = self.child.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
            let _ = child.kill().await;
        }
        std::fs::copy(from, self.dir.join("dump.rdb")).map_err(|e| format!("restore the snapshot: {e}"))?;
        self.spawn().await?;
        Ok(down.elapsed())
    }

    /// SIGKILL: the node is gone at once, with whatever it had not replicated.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Replicates from the server at `primary` (`REPLICAOF`); waits until
    /// the first sync is done.
    pub async fn replicate_from(&self, primary: SocketAddr) -> Result<(), String> {
        self.command(&["REPLICAOF", &primary.ip().to_string(), &primary.port().to_string()]).await?;
        wait_until("the replica's first sync", Duration::from_secs(10), || async {
            matches!(self.command(&["INFO", "replication"]).await,
                Ok(redis::Value::BulkString(b)) if String::from_utf8_lossy(&b).contains("master_link_status:up"))
        })
        .await
    }

    /// `REPLICAOF NO ONE`: this replica becomes a primary, as a failover
    /// promotes one.
    pub async fn promote(&self) -> Result<(), String> {
        self.command(&["REPLICAOF", "NO", "ONE"]).await.map(drop)
    }
}

/// A PostgreSQL cluster of the drill's own (`initdb` in a temporary
/// directory, trust auth on loopback), run as the `postgres` user when the
/// drill runs as root, since PostgreSQL refuses to run as root.
pub struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    tls: bool,
    child: Option<Child>,
}

impl PrivatePostgres {
    pub async fn start(dir: PathBuf) -> Result<Self, String> {
        Self::start_with(dir, None, None).await
    }

    /// With `tls`, TCP clients must use TLS (`hostssl` only); with
    /// `password`, user `postgres` must give it (SCRAM). Without them, trust
    /// auth on loopback.
    pub async fn start_with(
        dir: PathBuf,
        tls: Option<&TestCertificates>,
        password: Option<&str>,
    ) -> Result<Self, String> {
        let bin = postgres_bin_dir()?;
        let owner = if is_root() { Some(postgres_user()?) } else { None };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", dir.display()))?;
        }
        let mut pg = Self { port: free_port(), dir, bin, owner, tls: tls.is_some(), child: None };
        let pwfile = pg.dir.join("pwfile");
        pg.write_owned(&pwfile, password.unwrap_or("unused").as_bytes())?;
        let host_auth = if password.is_some() { "scram-sha-256" } else { "trust" };
        let status = pg
            .command("initdb")
            .args(["--auth-local", "trust", "--auth-host", host_auth, "-U", "postgres", "--no-sync", "-E", "UTF8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .arg("-D")
            .arg(pg.data())
            .stdout(log_file(&pg.dir.join("initdb.log")))
            .stderr(log_file(&pg.dir.join("initdb.log")))
            .status()
            .await
            .map_err(|e| format!("initdb: {e}"))?;
        if !status.success() {
            return Err(format!("initdb failed; see {}", pg.dir.join("initdb.log").display()));
        }
        if let Some(t) = tls {
            pg.write_owned(&pg.dir.join("server.pem"), &std::fs::read(&t.server_cert).map_err(|e| e.to_string())?)?;
            pg.write_owned(&pg.dir.join("server.key"), &std::fs::read(&t.server_key).map_err(|e| e.to_string())?)?;
            let hba = format!("local all all trust\nhostssl all all 127.0.0.1/32 {host_auth}\n");
            pg.write_owned(&pg.data().join("pg_hba.conf"), hba.as_bytes())?;
        }
        pg.spawn().await?;
        Ok(pg)
    }

    /// Writes a file the server's user owns, readable by it alone.
    fn write_owned(&self, path: &Path, bytes: &[u8]) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())?;
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", path.display()))?;
        }
        Ok(())
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        c.stdin(Stdio::null()).kill_on_drop(true);
        c
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@{}/postgres", self.addr())
    }

    async fn spawn(&mut self) -> Result<(), String> {
        let mut command = self.command("postgres");
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string(), "-c", "listen_addresses=127.0.0.1", "-c"])
            .arg(format!("unix_socket_directories={}", self.dir.display()));
        if self.tls {
            command
                .args(["-c", "ssl=on", "-c"])
                .arg(format!("ssl_cert_file={}", self.dir.join("server.pem").display()));
            command.arg("-c").arg(format!("ssl_key_file={}", self.dir.join("server.key").display()));
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(log_file(&self.dir.join("postgres.log")))
            .spawn()
            .map_err(|e| format!("postgres: {e}"))?;
        self.child = Some(child);
        let (isready, port) = (self.bin.join("pg_isready"), self.port.to_string());
        wait_until("postgres", Duration::from_secs(30), || async {
            let probe = Command::new(&isready).args(["-q", "-h", "127.0.0.1", "-p", &port]).status().await;
            probe.map(|s| s.success()).unwrap_or(false)
        })
        .await
    }

    /// A fast shutdown (SIGINT: open transactions roll back, connections
    /// close) and a start; returns how long it was down.
    pub async fn restart(&mut self) -> Result<Duration, String> {
        let down = Instant::now();
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
        self.spawn().await?;
        Ok(down.elapsed())
    }

    /// Stops the cluster (fast shutdown) and removes its directory.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").args(["-INT", &pid.to_string()]).status().await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:").map(|u| u.split_whitespace().next() == Some("0"))))
        .unwrap_or(false)
}

/// The `postgres` user's uid and gid, from /etc/passwd.
fn postgres_user() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"postgres")).then(|| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)))?
        })
        .ok_or_else(|| "no postgres user to run the private cluster as (install postgresql)".to_owned())
}

/// The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/N/bin).
fn postgres_bin_dir() -> Result<PathBuf, String> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL server binaries not found under /usr/lib/postgresql".to_owned())?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b).ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())
}

/// A throwaway certificate authority and a server certificate for
/// 127.0.0.1 / localhost, made with the `openssl` command.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

impl TestCertificates {
    pub async fn generate(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        let p = |name: &str| dir.join(name).display().to_string();
        let ca = format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -addext basicConstraints=critical,CA:TRUE \
             -addext keyUsage=critical,keyCertSign,cRLSign -keyout {} -out {}",
            p("ca.key"),
            p("ca.pem")
        );
        let csr = format!("req -newkey rsa:2048 -nodes -keyout {} -out {}", p("server.key"), p("server.csr"));
        let sign = format!(
            "x509 -req -days 2 -CAcreateserial -in {} -CA {} -CAkey {} -out {} -extfile {}",
            p("server.csr"),
            p("ca.pem"),
            p("ca.key"),
            p("server.pem"),
            p("server.ext")
        );
        for (step, subject) in [(ca, "/CN=fanrush test CA"), (csr, "/CN=localhost"), (sign, "")] {
            let mut args: Vec<&str> = step.split_whitespace().collect();
            if !subject.is_empty() {
                args.extend(["-subj", subject]);
            }
            let out = Command::new("openssl").args(&args).output().await.map_err(|e| format!("openssl: {e}"))?;
            if !out.status.success() {
                return Err(format!("openssl {}: {}", args[0], String::from_utf8_lossy(&out.stderr)));
            }
        }
        Ok(Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.ca_cert).map_err(|e| format!("{}: {e}", self.ca_cert.display()))
    }
}
