//! Accounts: sign-up, sign-in sessions, personal API tokens and roles.

use std::collections::BTreeSet;

use sparebox_store::{
    AccountId, ApiTokenId, ApiTokenRecord, NewApiToken, NewSession, Role, SessionRecord,
};
use uuid::Uuid;

use super::*;
use crate::passwords;

/// What a person sends to sign up.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignUp {
    /// Sign-in email; stored trimmed and lowercased, unique.
    pub email: String,
    /// 10 to 1024 characters.
    pub password: Secret,
    /// Any of `host_owner` and `deployer`, at least one. `admin` is granted only by the
    /// server operator.
    pub roles: Vec<String>,
    /// Display name; defaults to the email's local part.
    #[serde(default)]
    pub name: Option<String>,
}

/// What a person sends to sign in.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignIn {
    /// Sign-in email (compared after trimming and lowercasing).
    pub email: String,
    /// The password.
    pub password: Secret,
}

/// A new browser session. The session id and the CSRF token are shown only this once.
#[derive(Debug)]
pub struct SessionStart {
    /// The signed-in account.
    pub account: AccountRecord,
    /// The session id for the cookie.
    pub session_id: Secret,
    /// The token to echo in `X-CSRF-Token` on state-changing requests.
    pub csrf_token: Secret,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// The message for any failed sign-in, so it does not tell which part was wrong.
const SIGN_IN_FAILED: &str = "wrong email or password";

/// What an API token's name is called in error messages.
const TOKEN_NAME_WHAT: &str = "token name";

impl Platform {
    /// Signs a person up; returns the account with its first personal API token (whose
    /// value is shown only this once).
    ///
    /// # Errors
    ///
    /// Bad request for a malformed email, a password of the wrong length, or roles other
    /// than `host_owner` and `deployer`; conflict when the email is taken.
    pub async fn sign_up(
        &self,
        request: SignUp,
    ) -> Result<(AccountRecord, ApiTokenRecord, String), PlatformError> {
        let email = validate::email(&request.email)?;
        validate::password(&request.password)?;
        let roles = sign_up_roles(&request.roles)?;
        let name = match &request.name {
            Some(name) => validate::display_name("name", name)?,
            None => email
                .split('@')
                .next()
                .unwrap_or_default()
                .chars()
                .take(64)
                .collect(),
        };
        let password_hash = passwords::hash(request.password).await?;
        let id = Uuid::new_v4();
        let now = self.clock.now();
        let (token, secret) = new_api_token(id, "first token".to_owned(), now);
        let (account, token) = self
            .store
            .create_account(
                sparebox_store::NewAccount {
                    id,
                    email,
                    name,
                    password_hash,
                    roles,
                    created_at: now,
                },
                token,
            )
            .await
            .map_err(|err| match err {
                StoreError::Conflict(_) => PlatformError::new(
                    ErrorCode::Conflict,
                    "an account with this email already exists",
                ),
                other => other.into(),
            })?;
        tracing::info!(account = %account.id, "account signed up");
        Ok((account, token, secret))
    }

    /// Checks an email and password and opens a session. A wrong email and a wrong
    /// password give the same error after about the same time.
    ///
    /// # Errors
    ///
    /// Unauthorized when the email or the password is wrong.
    pub async fn sign_in(&self, request: SignIn) -> Result<SessionStart, PlatformError> {
        let email = request.email.trim().to_lowercase();
        let credentials = self.store.account_by_email(&email).await?;
        let stored = credentials.as_ref().and_then(|c| c.password_hash.clone());
        let verified = passwords::verify(request.password, stored).await;
        let Some(credentials) = credentials.filter(|_| verified) else {
            return Err(PlatformError::unauthorized(SIGN_IN_FAILED));
        };

        let session_id = Secret::new(tokens::generate(""));
        let csrf_token = Secret::new(tokens::generate(""));
        let now = self.clock.now();
        let expires_at = now + chrono_duration(self.config.session_ttl);
        self.store
            .create_session(NewSession {
                id_hash: tokens::hash(session_id.expose()),
                account: credentials.account.id,
                csrf_hash: tokens::hash(csrf_token.expose()),
                created_at: now,
                expires_at,
            })
            .await?;
        tracing::info!(account = %credentials.account.id, "signed in");
        Ok(SessionStart {
            account: credentials.account,
            session_id,
            csrf_token,
            expires_at,
        })
    }

    /// The live session behind a session id from a cookie.
    ///
    /// # Errors
    ///
    /// Unauthorized when there is no such session or it has expired.
    pub async fn authenticate_session(
        &self,
        session_id: &str,
    ) -> Result<SessionRecord, PlatformError> {
        self.store
            .session_by_hash(&tokens::hash(session_id), self.clock.now())
            .await?
            .ok_or_else(|| PlatformError::unauthorized("session expired or signed out"))
    }

    /// Ends the session whose id hashes to `id_hash`.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn sign_out(&self, id_hash: &[u8]) -> Result<(), PlatformError> {
        self.store.delete_session(id_hash).await?;
        tracing::info!("signed out");
        Ok(())
    }

    /// The account that owns the personal API token `token`.
    ///
    /// # Errors
    ///
    /// Unauthorized when no account has that token (or it was revoked).
    pub async fn authenticate_account(&self, token: &str) -> Result<AccountRecord, PlatformError> {
        self.store
            .account_by_token_hash(&tokens::hash(token))
            .await?
            .ok_or_else(|| PlatformError::unauthorized("invalid API token"))
    }

    /// Issues a personal API token for `account`; its value is shown only this once.
    ///
    /// # Errors
    ///
    /// Bad request for an empty or overlong name.
    pub async fn create_api_token(
        &self,
        account: &AccountRecord,
        name: &str,
    ) -> Result<(ApiTokenRecord, String), PlatformError> {
        let name = validate::display_name(TOKEN_NAME_WHAT, name)?;
        let (token, secret) = new_api_token(account.id, name, self.clock.now());
        let token = self.store.create_api_token(token).await?;
        tracing::info!(account = %account.id, token = %token.id, "api token created");
        Ok((token, secret))
    }

    /// The account's API tokens (names and prefixes, never values).
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn api_tokens(
        &self,
        account: &AccountRecord,
    ) -> Result<Vec<ApiTokenRecord>, PlatformError> {
        Ok(self.store.api_tokens_for_account(account.id).await?)
    }

    /// Revokes one of the account's API tokens; it stops working at once.
    ///
    /// # Errors
    ///
    /// Not found when the account has no such token.
    pub async fn revoke_api_token(
        &self,
        account: &AccountRecord,
        id: ApiTokenId,
    ) -> Result<(), PlatformError> {
        if !self.store.delete_api_token(account.id, id).await? {
            return Err(PlatformError::not_found(format!("api token {id}")));
        }
        tracing::info!(account = %account.id, token = %id, "api token revoked");
        Ok(())
    }

    /// Gives the `admin` role to the account signing in with `email`, for the operator
    /// (the reference binary's `--admin-email`). Returns `None` when no account has that
    /// email.
    ///
    /// # Errors
    ///
    /// Internal on storage failure.
    pub async fn grant_admin(&self, email: &str) -> Result<Option<AccountRecord>, PlatformError> {
        let email = email.trim().to_lowercase();
        let Some(credentials) = self.store.account_by_email(&email).await? else {
            return Ok(None);
        };
        let mut roles = credentials.account.roles.clone();
        if !roles.insert(Role::Admin) {
            return Ok(Some(credentials.account));
        }
        let account = self
            .store
            .set_account_roles(credentials.account.id, roles)
            .await?;
        tracing::info!(account = %account.id, "admin role granted");
        Ok(Some(account))
    }

    /// Checks that `account` holds `role`.
    ///
    /// # Errors
    ///
    /// Forbidden, naming the role and what it was needed for.
    pub fn require_role(
        &self,
        account: &AccountRecord,
        role: Role,
        action: &str,
    ) -> Result<(), PlatformError> {
        if account.has_role(role) {
            return Ok(());
        }
        Err(PlatformError::new(
            ErrorCode::Forbidden,
            format!("{action} needs the {role} role"),
        ))
    }

    /// Every agent on the platform, host by host, for an admin.
    ///
    /// # Errors
    ///
    /// Forbidden without the `admin` role.
    pub async fn all_agents(
        &self,
        reader: &AccountRecord,
    ) -> Result<Vec<AgentView>, PlatformError> {
        self.require_role(reader, Role::Admin, "listing every agent")?;
        let mut views = Vec::new();
        for host in self.store.list_hosts().await? {
            let agents = self.store.agents_for_host(host.id).await?;
            views.extend(agents.iter().map(AgentView::from));
        }
        Ok(views)
    }

    /// The agent `id` if `reader` owns it or is an admin (reads only: commands still need
    /// the owner, see [`Platform::owned_agent`]).
    ///
    /// # Errors
    ///
    /// Not found when it does not exist or the reader may not see it.
    pub async fn readable_agent(
        &self,
        reader: &AccountRecord,
        id: AgentId,
    ) -> Result<AgentRecord, PlatformError> {
        match self.store.agent(id).await? {
            Some(agent) if agent.owner == reader.id || reader.has_role(Role::Admin) => Ok(agent),
            _ => Err(PlatformError::not_found(format!("agent {id}"))),
        }
    }
}

/// Roles a person may choose at sign-up.
fn sign_up_roles(names: &[String]) -> Result<BTreeSet<Role>, PlatformError> {
    let mut roles = BTreeSet::new();
    for name in names {
        match Role::parse(name) {
            Some(Role::Admin) => {
                return Err(PlatformError::bad_request(
                    "role admin cannot be chosen at sign-up: the server operator grants it",
                ))
            }
            Some(role) => {
                roles.insert(role);
            }
            None => {
                return Err(PlatformError::bad_request(format!(
                    "unknown role {name:?}: expected host_owner or deployer"
                )))
            }
        }
    }
    if roles.is_empty() {
        return Err(PlatformError::bad_request(
            "choose at least one role: host_owner, deployer",
        ));
    }
    Ok(roles)
}

/// A new random API token for `account`: the row to store and the value to show once.
fn new_api_token(account: AccountId, name: String, now: DateTime<Utc>) -> (NewApiToken, String) {
    let secret = tokens::generate(tokens::API_TOKEN_PREFIX);
    let token = NewApiToken {
        id: Uuid::new_v4(),
        account,
        name,
        token_hash: tokens::hash(&secret),
        prefix: tokens::display_prefix(&secret, tokens::API_TOKEN_PREFIX),
        created_at: now,
    };
    (token, secret)
}
