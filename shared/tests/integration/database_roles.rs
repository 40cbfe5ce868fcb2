//! Each function connects to PostgreSQL as its own role with only the grants
//! its work needs, and `db-setup` is what makes that possible: on a private
//! PostgreSQL that takes only TLS and SCRAM passwords (as RDS Proxy does),
//! the functions' roles cannot log in until the setup, run as the owner,
//! has applied the migrations and set each role's password from its secret;
//! then each role does its own work and is refused the rest.

use crate::common::entry;
use chrono::{Duration as Minutes, Utc};
use fanrush::adapters::postgres_store::{Database, Migrations, StoreError};
use fanrush::adapters::secrets::{Secret, SecretSource};
use fanrush::config::DatabaseConfig;
use fanrush::rules::domain::{EventId, FanEvent};
use fanrush::usecases::database_setup::{DatabaseSetup, SetupError};
use fanrush_local::services::{PrivatePostgres, TestCertificates};
use std::time::Duration;

const OWNER_PASSWORD: &str = "owner-password-0123456789";

/// A role's secret as the template generates it: JSON with its username.
fn role_secret(role: &str, password: &str) -> (String, SecretSource) {
    let json = serde_json::json!({ "username": role, "password": password }).to_string();
    (format!("secret-of-{role}"), SecretSource::Plain(Secret::new(json)))
}

fn roles(passwords: [&str; 3]) -> Vec<(String, SecretSource)> {
    ["fanrush_writer", "fanrush_admin", "fanrush_scheduler"]
        .iter()
        .zip(passwords)
        .map(|(r, p)| role_secret(r, p))
        .collect()
}

struct Server {
    pg: PrivatePostgres,
    certs: TestCertificates,
    dir: std::path::PathBuf,
}

impl Server {
    async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("fanrush-roles-{}", std::process::id()));
        let certs = TestCertificates::generate(&dir.join("certs")).await.unwrap();
        let pg = PrivatePostgres::start_with(dir.join("pg"), Some(&certs), Some(OWNER_PASSWORD)).await.unwrap();
        Self { pg, certs, dir }
    }

    /// The database as `user` with `password`, migrations as `migrations`.
    fn database(&self, user: &str, password: &str, migrations: Migrations) -> Database {
        DatabaseConfig {
            url: format!("postgres://{user}@{}/postgres?sslmode=require", self.pg.addr()),
            schema: None,
            connect_timeout: Duration::from_secs(5),
            password: SecretSource::Plain(Secret::new(password)),
            root_certificates: Some(self.certs.ca_pem().unwrap()),
            migrations,
        }
        .database()
        .unwrap()
    }

    async fn stop(self) {
        self.pg.stop().await;
        let _ = std::fs::remove_dir_all(self.dir);
    }
}

fn refused(result: Result<impl std::fmt::Debug, StoreError>) -> bool {
    matches!(&result, Err(e @ StoreError::Rejected(_)) if e.to_string().contains("SQLSTATE 42501"))
}

fn event(id: &str) -> FanEvent {
    FanEvent {
        id: EventId::parse(id).unwrap(),
        title: "roles".into(),
        opens_at: Utc::now(),
        closes_at: Utc::now() + Minutes::hours(1),
        capacity: 10,
        expected_peak_rps: 1.0,
        lead_minutes: None,
        cooldown_minutes: None,
        line: None,
    }
}

#[tokio::test]
async fn each_function_connects_as_its_own_role_once_db_setup_ran_and_may_do_only_its_work() {
    let server = Server::start().await;
    let passwords = ["writer-pw-1", "admin-pw-2", "scheduler-pw-3"];
    let writer = server.database("fanrush_writer", passwords[0], Migrations::Expect);

    // Before the setup: no role, so no login; the function answers as in an outage.
    assert!(writer.insert_entries(&[entry("e", "f1", 1)]).await.unwrap_err().is_unavailable());

    // A secret without a username, or a role left out, stops the setup before any change.
    let mut no_user = roles(passwords);
    no_user[0] = ("bare".into(), SecretSource::Plain(Secret::new("just-a-password")));
    let failed =
        DatabaseSetup::new(server.database("postgres", OWNER_PASSWORD, Migrations::Apply), no_user).run().await;
    assert!(matches!(failed, Err(SetupError::NoUsername(_))), "{failed:?}");
    let failed = DatabaseSetup::new(
        server.database("postgres", OWNER_PASSWORD, Migrations::Apply),
        roles(passwords)[..2].to_vec(),
    )
    .run()
    .await;
    assert!(matches!(failed, Err(SetupError::RolesMissing { .. })), "{failed:?}");
    let other = vec![
        role_secret("postgres", "x"),
        role_secret("fanrush_writer", "y"),
        role_secret("fanrush_admin", "z"),
        role_secret("fanrush_scheduler", "w"),
    ];
    let failed = DatabaseSetup::new(server.database("postgres", OWNER_PASSWORD, Migrations::Apply), other).run().await;
    assert!(matches!(failed, Err(SetupError::Store(StoreError::Config(_)))), "only the functions' roles: {failed:?}");

    let setup = DatabaseSetup::new(server.database("postgres", OWNER_PASSWORD, Migrations::Apply), roles(passwords));
    let report = setup.run().await.expect("the setup runs as the owner");
    assert_eq!(report.roles, ["fanrush_writer", "fanrush_admin", "fanrush_scheduler"]);
    setup.run().await.expect("and runs again without harm");

    // Each role logs in with its own password, over SCRAM, and no other.
    let admin = server.database("fanrush_admin", passwords[1], Migrations::Expect);
    let scheduler = server.database("fanrush_scheduler", passwords[2], Migrations::Expect);
    let wrong = server.database("fanrush_writer", passwords[1], Migrations::Expect);
    assert!(wrong.events().await.unwrap_err().is_unavailable(), "another role's password is refused");

    // admin-api manages events and reads their entries.
    admin.upsert_event(&event("roles"), "seed").await.expect("admin defines events");
    assert_eq!(admin.events().await.unwrap().len(), 1);
    assert!(admin.delete_event(&EventId::parse("roles").unwrap()).await.unwrap());
    admin.upsert_event(&event("kept"), "seed").await.unwrap();
    assert!(refused(admin.insert_entries(&[entry("kept", "f0", 9)]).await), "admin writes no entries");

    // The writer inserts entries, redelivered ones too, and reads nothing.
    assert_eq!(writer.insert_entries(&[entry("kept", "f1", 1), entry("kept", "f2", 2)]).await.unwrap(), 2);
    assert_eq!(writer.insert_entries(&[entry("kept", "f1", 1)]).await.unwrap(), 0, "a redelivery is skipped");
    assert!(refused(writer.events().await), "the writer reads no calendar");
    let kept = EventId::parse("kept").unwrap();
    assert!(refused(writer.entries_after(&kept, 0, 10).await), "nor the entries' positions and notes");
    assert!(refused(writer.upsert_event(&event("mine"), "seed").await));

    // The scheduler reads the calendar and the entries, and writes nothing.
    assert_eq!(scheduler.events().await.unwrap().len(), 1);
    assert_eq!(scheduler.entry_totals(&EventId::parse("kept").unwrap()).await.unwrap(), (2, 2));
    assert_eq!(admin.written_count(&EventId::parse("kept").unwrap()).await.unwrap(), 2);
    assert!(refused(scheduler.upsert_event(&event("mine"), "seed").await));
    assert!(refused(scheduler.delete_event(&EventId::parse("kept").unwrap()).await));
    assert!(refused(scheduler.insert_entries(&[entry("kept", "f3", 3)]).await));

    // The scheduler reveals a draw once; admin-api reads it; the writer neither.
    let fans = [[1u8; 8], [2u8; 8]];
    assert!(scheduler.store_draw(&kept, "seed", "digest", &fans).await.unwrap(), "the scheduler stores a draw");
    assert!(!scheduler.store_draw(&kept, "another", "digest", &fans).await.unwrap(), "once: a draw is never rewritten");
    assert_eq!(admin.draw(&kept).await.unwrap().map(|d| (d.seed, d.fans)), Some(("seed".into(), fans.to_vec())));
    assert!(refused(admin.store_draw(&kept, "seed", "digest", &fans).await), "admin-api reveals no draw");
    assert!(refused(writer.draw(&kept).await), "the writer reads no draw");

    // A role never migrates: a migration it lacks is an outage until the setup runs.
    let behind = Database::new(
        &format!("postgres://fanrush_writer@{}/postgres?sslmode=require", server.pg.addr()),
        Some("not_set_up".into()),
        Duration::from_secs(5),
    )
    .unwrap()
    .with_password(SecretSource::Plain(Secret::new(passwords[0])))
    .with_root_certificates(server.certs.ca_pem().unwrap())
    .with_migrations(Migrations::Expect);
    let err = behind.insert_entries(&[entry("kept", "f4", 4)]).await.unwrap_err();
    let all = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations")).unwrap().count();
    assert!(matches!(&err, StoreError::NotMigrated(m) if m.len() == all) && err.is_unavailable(), "{err:?}");
    server.stop().await;
}
