//! `db-setup`: brings the database up to date as its owner and lets
//! each function's role log in with the password its own secret holds, so
//! the functions connect as those roles and never as the owner. Run once
//! after each deploy that adds a migration (docs/deploy.md); running it
//! again changes nothing but the passwords, to what the secrets hold now.

use crate::adapters::postgres_store::{credentials, Database, StoreError, FUNCTION_ROLES};
use crate::adapters::secrets::{SecretError, SecretSource};
use serde::Serialize;
use thiserror::Error;

/// Why the setup stopped. Nothing it did before is undone: migrations are
/// applied in a transaction each, and a password set is set.
#[derive(Debug, Error)]
pub enum SetupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("the role secret {0} is empty or missing")]
    NoSecret(String),
    #[error("the role secret {0} names no username; a role's secret is JSON with username and password")]
    NoUsername(String),
    #[error("the role secrets name {named:?}, but every function's role needs one: {FUNCTION_ROLES:?}")]
    RolesMissing { named: Vec<String> },
}

/// What the setup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetupReport {
    /// The roles whose passwords were set, in the secrets' order.
    pub roles: Vec<String>,
}

/// The owner's database and each role's secret.
pub struct DatabaseSetup {
    db: Database,
    role_secrets: Vec<(String, SecretSource)>,
}

impl DatabaseSetup {
    /// `db` connects as the owner and applies migrations; `role_secrets`
    /// are each role's secret, by a name for messages (its id).
    pub fn new(db: Database, role_secrets: Vec<(String, SecretSource)>) -> Self {
        Self { db, role_secrets }
    }

    pub async fn run(&self) -> Result<SetupReport, SetupError> {
        // Reading every secret first: a bad one stops the setup before any
        // password changes.
        let mut passwords = Vec::with_capacity(self.role_secrets.len());
        for (name, source) in &self.role_secrets {
            let secret = source.resolve().await?.ok_or_else(|| SetupError::NoSecret(name.clone()))?;
            let (user, password) = credentials(secret.expose());
            let user = user.ok_or_else(|| SetupError::NoUsername(name.clone()))?;
            passwords.push((user, password));
        }
        let named: Vec<String> = passwords.iter().map(|(u, _)| u.clone()).collect();
        if !FUNCTION_ROLES.iter().all(|r| named.iter().any(|n| n == r)) {
            return Err(SetupError::RolesMissing { named });
        }
        self.db.migrate().await?;
        for (user, password) in &passwords {
            self.db.set_role_password(user, password).await?;
            tracing::info!(role = %user, "database role may log in with its secret's password");
        }
        Ok(SetupReport { roles: named })
    }
}
