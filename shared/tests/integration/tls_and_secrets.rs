//! Redis over TLS with an AUTH token (ElastiCache in-transit encryption) and
//! PostgreSQL over TLS with a password (RDS), each secret read through a
//! stand-in of the Parameters and Secrets extension on first use. The
//! functions' own constructors (`RedisConfig::gate`,
//! `DatabaseConfig::database`) run against private servers that accept nothing
//! else: no plaintext, no unverified certificate, no missing or wrong secret.

use fanrush::adapters::postgres_store::Migrations;
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::config::{DatabaseConfig, RedisConfig};
use fanrush_local::services::{PrivatePostgres, PrivateRedis, TestCertificates};
use fanrush_local::HttpCapture;
use std::path::PathBuf;
use std::time::Duration;

const REDIS_TOKEN: &str = "redis-auth-token-0123456789";
const DB_PASSWORD: &str = "db-password-9876543210";

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("fanrush-tls-{}-{name}", std::process::id()))
}

/// A Parameters and Secrets extension that answers every read with `value`.
async fn secrets_extension(value: &str) -> HttpCapture {
    let extension = HttpCapture::start().await.unwrap();
    extension.answer(200, &serde_json::json!({ "SecretString": value }).to_string());
    extension
}

/// The gate's settings for a private TLS Redis, the token read through `extension`.
fn redis_config(redis: &PrivateRedis, certs: &TestCertificates, extension: &HttpCapture, prefix: &str) -> RedisConfig {
    RedisConfig {
        url: redis.url(),
        key_prefix: prefix.into(),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        auth: SecretSource::Extension { secret_id: "fanrush/redis-auth".into(), port: extension.port() },
        root_certificates: Some(certs.ca_pem().unwrap()),
        cluster: false,
    }
}

#[tokio::test]
async fn redis_over_tls_with_an_auth_token_from_secrets_manager() {
    let dir = scratch("redis");
    let certs = TestCertificates::generate(&dir.join("certs")).await.unwrap();
    let redis =
        PrivateRedis::start_with(dir.join("data"), Some(certs.clone()), Some(REDIS_TOKEN.into())).await.unwrap();
    assert!(redis.url().starts_with("rediss://"));
    let extension = secrets_extension(REDIS_TOKEN).await;
    let config = redis_config(&redis, &certs, &extension, "tls");

    let gate = config.gate().unwrap();
    assert!(extension.requests().is_empty(), "nothing is read before the first use");
    gate.mark_state_present().await.unwrap();
    assert!(gate.directory_holds().await.unwrap(), "the directory is there");
    assert!(gate.directory_holds().await.unwrap());
    assert_eq!(extension.requests().len(), 1, "the token is read once per connection, not per command");

    let without_token = RedisConfig { auth: SecretSource::None, ..config.clone() }.gate().unwrap();
    assert!(without_token.directory_holds().await.is_err(), "AUTH is required");
    let wrong_token = RedisConfig { auth: SecretSource::Plain(Secret::new("wrong")), ..config.clone() };
    assert!(wrong_token.gate().unwrap().directory_holds().await.is_err());
    let system_roots = RedisConfig { root_certificates: None, ..config.clone() }.gate().unwrap();
    assert!(system_roots.directory_holds().await.is_err(), "the server's certificate is verified");
    let plaintext = RedisConfig { url: redis.url().replace("rediss://", "redis://"), ..config };
    assert!(plaintext.gate().unwrap().directory_holds().await.is_err(), "TLS only");
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs one command as the server's admin (the token given), over TLS.
async fn admin(redis: &PrivateRedis, certs: &TestCertificates, token: &str, cmd: &redis::Cmd) -> redis::Value {
    let url = redis.url().replacen("rediss://", &format!("rediss://:{token}@"), 1);
    let tls = redis::TlsCertificates { client_tls: None, root_cert: Some(certs.ca_pem().unwrap()) };
    let client = redis::Client::build_with_tls(url, tls).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    cmd.query_async(&mut c).await.unwrap()
}

fn connected_clients(info: &redis::Value) -> usize {
    let text = redis::from_redis_value::<String>(info.clone()).unwrap();
    text.lines().find_map(|l| l.strip_prefix("connected_clients:")).unwrap().trim().parse().unwrap()
}

#[tokio::test]
async fn a_provisioned_init_opens_tls_without_the_secret_and_a_rotated_token_is_read_again() {
    let dir = scratch("rotate");
    let certs = TestCertificates::generate(&dir.join("certs")).await.unwrap();
    let redis =
        PrivateRedis::start_with(dir.join("data"), Some(certs.clone()), Some(REDIS_TOKEN.into())).await.unwrap();
    let extension = secrets_extension(REDIS_TOKEN).await;
    let config = redis_config(&redis, &certs, &extension, "rotate");
    let info_clients = redis::cmd("INFO").arg("clients").clone();
    let before = connected_clients(&admin(&redis, &certs, REDIS_TOKEN, &info_clients).await);

    // Init: the TLS connection is opened, but the extension, which init may
    // not call, is not asked for the token.
    let gate = config.gate().unwrap();
    gate.warm(Duration::from_secs(2)).await.unwrap();
    assert!(extension.requests().is_empty(), "init never calls the secrets extension");
    let after = connected_clients(&admin(&redis, &certs, REDIS_TOKEN, &info_clients).await);
    assert_eq!(after, before + 1, "warming opened one connection");
    // The first request introduces it: the token is read then.
    gate.mark_state_present().await.unwrap();
    assert_eq!(extension.requests().len(), 1);

    // The token is rotated and the connection drops. The secrets extension
    // still serves the old token (its cache, SECRETS_MANAGER_TTL): the
    // reconnect fails on AUTH.
    const ROTATED: &str = "redis-auth-token-rotated-42";
    admin(&redis, &certs, REDIS_TOKEN, redis::cmd("CONFIG").arg(&["SET", "requirepass", ROTATED])).await;
    admin(&redis, &certs, ROTATED, redis::cmd("CLIENT").arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])).await;
    assert!(gate.directory_holds().await.is_err(), "the old token is refused");
    // Once the extension serves the new token, the next request reads it
    // again and gets in, in the same environment.
    extension.answer(200, &serde_json::json!({ "SecretString": ROTATED }).to_string());
    assert!(gate.directory_holds().await.unwrap());
    assert!(extension.requests().len() >= 3, "the token was read again after the AUTH failure");
    drop(redis);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn postgres_over_tls_with_a_password_from_secrets_manager() {
    let dir = scratch("pg");
    let certs = TestCertificates::generate(&dir.join("certs")).await.unwrap();
    let pg = PrivatePostgres::start_with(dir.join("pg"), Some(&certs), Some(DB_PASSWORD)).await.unwrap();
    // As RDS stores it: JSON with username and password.
    let secret = serde_json::json!({ "username": "postgres", "password": DB_PASSWORD }).to_string();
    let extension = secrets_extension(&secret).await;
    let config = DatabaseConfig {
        url: format!("postgres://{}/postgres?sslmode=require", pg.addr()),
        schema: None,
        connect_timeout: Duration::from_secs(5),
        password: SecretSource::Extension { secret_id: "fanrush/db".into(), port: extension.port() },
        root_certificates: Some(certs.ca_pem().unwrap()),
        migrations: Migrations::Apply,
    };

    let db = config.database().unwrap();
    assert!(extension.requests().is_empty(), "nothing is read before the first use");
    db.migrate().await.unwrap();
    assert!(db.events().await.unwrap().is_empty());
    assert!(db.events().await.unwrap().is_empty());
    assert_eq!(extension.requests().len(), 1, "the password is read once per connection, not per query");

    let user = format!("postgres://postgres@{}/postgres", pg.addr());
    let plain_password = SecretSource::Plain(Secret::new(DB_PASSWORD));
    let plaintext = DatabaseConfig { url: user.clone(), password: plain_password.clone(), ..config.clone() };
    assert!(plaintext.database().unwrap().migrate().await.is_err(), "hostssl only");
    let system_roots = DatabaseConfig { root_certificates: None, ..config.clone() };
    assert!(system_roots.database().unwrap().migrate().await.is_err(), "the certificate is verified");
    let wrong = DatabaseConfig {
        url: format!("{user}?sslmode=require"),
        password: SecretSource::Plain(Secret::new("wrong")),
        ..config.clone()
    };
    assert!(wrong.database().unwrap().migrate().await.is_err(), "the password is checked");
    let direct = DatabaseConfig { url: format!("{user}?sslmode=require"), password: plain_password, ..config };
    direct.database().unwrap().migrate().await.expect("a plain password works too (local runs)");
    pg.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs SQL on the private server as its superuser, over TLS, with `password`.
fn psql(pg: &PrivatePostgres, password: &str, sql: &str) {
    let status = std::process::Command::new("psql")
        .arg(format!("host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require", pg.addr().port()))
        .args(["-v", "ON_ERROR_STOP=1", "-qc", sql])
        .env("PGPASSWORD", password)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("psql");
    assert!(status.success(), "psql: {sql}");
}

#[tokio::test]
async fn a_rotated_database_password_is_read_again_at_the_next_connection() {
    let dir = scratch("pg-rotate");
    let certs = TestCertificates::generate(&dir.join("certs")).await.unwrap();
    let pg = PrivatePostgres::start_with(dir.join("pg"), Some(&certs), Some(DB_PASSWORD)).await.unwrap();
    let as_rds = |password: &str| serde_json::json!({ "username": "postgres", "password": password }).to_string();
    let extension = secrets_extension(&as_rds(DB_PASSWORD)).await;
    let db = DatabaseConfig {
        url: format!("postgres://{}/postgres?sslmode=require", pg.addr()),
        schema: None,
        connect_timeout: Duration::from_secs(5),
        password: SecretSource::Extension { secret_id: "fanrush/db".into(), port: extension.port() },
        root_certificates: Some(certs.ca_pem().unwrap()),
        migrations: Default::default(),
    }
    .database()
    .unwrap();
    db.migrate().await.unwrap();
    assert_eq!(extension.requests().len(), 1);

    // Rotation: the password changes and the function's connection drops.
    const ROTATED: &str = "db-password-rotated-1234";
    psql(&pg, DB_PASSWORD, &format!("ALTER USER postgres PASSWORD '{ROTATED}'"));
    psql(&pg, ROTATED, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'fanrush'");
    // The extension still serves the old password (its cache): refused.
    assert!(db.events().await.is_err());
    assert!(db.events().await.is_err(), "the old password is refused");
    // It serves the new one: the next connection reads it, same Database.
    extension.answer(200, &serde_json::json!({ "SecretString": as_rds(ROTATED) }).to_string());
    db.events().await.expect("the rotated password is read at the next connection");
    assert!(extension.requests().len() >= 3, "read again after the refusal");
    pg.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
