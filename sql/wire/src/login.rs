//! Startup and authentication of one connection: the rule for it ([`Hba`]), then trust, a
//! SCRAM-SHA-256 exchange or a clear-text password, then the session learns who logged in.
//! Every refusal is `FATAL` with PostgreSQL's SQLSTATE and message (28000, 28P01, 08P01),
//! and no password or proof reaches a log.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use pgwire::api::auth::{self, StartupHandler};
use pgwire::api::{ClientInfo, PgWireConnectionState, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Mutex;

use crate::auth::{Hba, Method, ScramError, ScramExchange, Verifier};
use crate::backend::{SqlBackend, SqlSession, Startup};
use crate::sqlstate::SqlState;
use crate::SERVER_VERSION;

/// Where a connection is in its login.
enum Step {
    /// Before the startup message.
    Start,
    /// AuthenticationSASL sent; the SASLInitialResponse comes next.
    ScramOffered,
    /// server-first-message sent; the client-final-message comes next.
    ScramContinued(Box<ScramExchange>),
    /// AuthenticationCleartextPassword sent.
    PasswordAsked,
}

/// pgwire's StartupHandler for one connection.
pub struct Login<B: SqlBackend> {
    backend: Arc<B>,
    hba: Arc<Hba>,
    session: Arc<Mutex<B::Session>>,
    step: Mutex<Step>,
    terminate: tokio_util::sync::CancellationToken,
    /// The client's address when another cluster member relayed the connection (its PROXY
    /// header); the socket's peer otherwise.
    client_ip: Option<std::net::IpAddr>,
}

fn fatal(state: SqlState, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".into(),
        state.code().into(),
        message,
    )))
}

fn metadata(client: &impl ClientInfo, key: &str) -> Option<String> {
    client.metadata().get(key).cloned()
}

fn password_failed(user: &str) -> PgWireError {
    fatal(
        SqlState::InvalidPassword,
        format!("password authentication failed for user \"{user}\""),
    )
}

impl<B: SqlBackend> Login<B> {
    pub fn new(
        backend: Arc<B>,
        hba: Arc<Hba>,
        session: Arc<Mutex<B::Session>>,
        terminate: tokio_util::sync::CancellationToken,
        client_ip: Option<std::net::IpAddr>,
    ) -> Self {
        Login {
            backend,
            hba,
            session,
            step: Mutex::new(Step::Start),
            terminate,
            client_ip,
        }
    }

    /// The user and database of the startup message (the database defaults to the user).
    fn who(client: &impl ClientInfo) -> PgWireResult<(String, String)> {
        let user = metadata(client, pgwire::api::METADATA_USER).filter(|u| !u.is_empty());
        let Some(user) = user else {
            return Err(fatal(
                SqlState::InvalidAuthorizationSpecification,
                "no PostgreSQL user name specified in startup packet".into(),
            ));
        };
        let database = metadata(client, pgwire::api::METADATA_DATABASE)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| user.clone());
        Ok((user, database))
    }

    /// The role may log in (checked after its password, as PostgreSQL does); whether it is
    /// a superuser.
    fn check_login(&self, user: &str) -> PgWireResult<bool> {
        match self.backend.login_role(user) {
            None => Err(fatal(
                SqlState::InvalidAuthorizationSpecification,
                format!("role \"{user}\" does not exist"),
            )),
            Some(r) if !r.can_login => Err(fatal(
                SqlState::InvalidAuthorizationSpecification,
                format!("role \"{user}\" is not permitted to log in"),
            )),
            Some(r) => Ok(r.superuser),
        }
    }

    fn verifier(&self, user: &str) -> Option<Verifier> {
        self.backend
            .login_role(user)
            .and_then(|r| r.verifier)
            .and_then(|v| Verifier::parse(&v))
    }

    /// Logged in: the session learns who, the client gets its backend key, the parameter
    /// statuses and ReadyForQuery.
    async fn finish<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (user, database) = Self::who(client)?;
        let superuser = self.check_login(&user)?;
        let (pid, key) = PIDS.generate(client);
        let parameters = client
            .metadata()
            .iter()
            .filter(|(k, _)| {
                ![pgwire::api::METADATA_USER, pgwire::api::METADATA_DATABASE].contains(&k.as_str())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.session
            .lock()
            .await
            .started(Startup {
                pid,
                secret: key.to_bytes(),
                user,
                database,
                tls: client.is_secure(),
                parameters,
                terminate: self.terminate.clone(),
            })
            .map_err(|mut e| {
                e.severity = "FATAL".into();
                e.severity_nonlocalized = Some("FATAL".into());
                PgWireError::UserError(e)
            })?;
        client.set_pid_and_secret_key(pid, key);
        let mut server_parameters = auth::DefaultServerParameterProvider::default();
        server_parameters.server_version = SERVER_VERSION.to_string();
        server_parameters.is_superuser = superuser;
        auth::finish_authentication(client, &server_parameters).await
    }
}

/// Backend pids (a process-wide counter) and secret keys (random) for CancelRequest.
static PIDS: std::sync::LazyLock<pgwire::api::RandomPidSecretKeyGenerator> =
    std::sync::LazyLock::new(pgwire::api::RandomPidSecretKeyGenerator::default);

#[async_trait]
impl<B: SqlBackend> StartupHandler for Login<B> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut step = self.step.lock().await;
        match (message, std::mem::replace(&mut *step, Step::Start)) {
            (PgWireFrontendMessage::Startup(ref startup), Step::Start) => {
                auth::protocol_negotiation(client, startup).await?;
                auth::save_startup_parameters_to_metadata(client, startup);
                let (user, database) = Self::who(client)?;
                let tls = client.is_secure();
                let peer = self.client_ip.unwrap_or_else(|| client.socket_addr().ip());
                let encryption = if tls {
                    "SSL encryption"
                } else {
                    "no encryption"
                };
                let Some(rule) = self.hba.rule(tls, &database, &user, peer) else {
                    return Err(fatal(
                        SqlState::InvalidAuthorizationSpecification,
                        format!(
                            "no pg_hba.conf entry for host \"{peer}\", user \"{user}\", database \"{database}\", {encryption}"
                        ),
                    ));
                };
                match rule.method {
                    Method::Reject => Err(fatal(
                        SqlState::InvalidAuthorizationSpecification,
                        format!(
                            "pg_hba.conf rejects connection for host \"{peer}\", user \"{user}\", database \"{database}\", {encryption}"
                        ),
                    )),
                    Method::Trust => self.finish(client).await,
                    Method::Scram => {
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                        *step = Step::ScramOffered;
                        client
                            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                                vec!["SCRAM-SHA-256".into()],
                            )))
                            .await?;
                        Ok(())
                    }
                    Method::Password => {
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                        *step = Step::PasswordAsked;
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::CleartextPassword,
                            ))
                            .await?;
                        Ok(())
                    }
                }
            }
            (PgWireFrontendMessage::PasswordMessageFamily(msg), Step::ScramOffered) => {
                let (user, _) = Self::who(client)?;
                let initial = msg.into_sasl_initial_response()?;
                if initial.auth_method != "SCRAM-SHA-256" {
                    return Err(fatal(
                        SqlState::ProtocolViolation,
                        "client selected an invalid SASL authentication mechanism".into(),
                    ));
                }
                let mut exchange = ScramExchange::new(&user, self.verifier(&user));
                let data = initial.data.unwrap_or_default();
                let server_first = exchange
                    .client_first(&data)
                    .map_err(|e| scram_error(e, &user))?;
                *step = Step::ScramContinued(Box::new(exchange));
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLContinue(server_first.into()),
                    ))
                    .await?;
                Ok(())
            }
            (PgWireFrontendMessage::PasswordMessageFamily(msg), Step::ScramContinued(exchange)) => {
                let (user, _) = Self::who(client)?;
                let response = msg.into_sasl_response()?;
                let server_final = exchange
                    .client_final(&response.data)
                    .map_err(|e| scram_error(e, &user))?;
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::SASLFinal(server_final.into()),
                    ))
                    .await?;
                self.finish(client).await
            }
            (PgWireFrontendMessage::PasswordMessageFamily(msg), Step::PasswordAsked) => {
                let (user, _) = Self::who(client)?;
                let password = msg.into_password()?.password;
                let ok = self.verifier(&user).is_some_and(|v| v.check(&password));
                if !ok {
                    return Err(password_failed(&user));
                }
                self.finish(client).await
            }
            _ => Err(fatal(
                SqlState::ProtocolViolation,
                "unexpected message during authentication".into(),
            )),
        }
    }
}

fn scram_error(e: ScramError, user: &str) -> PgWireError {
    match e {
        ScramError::WrongPassword => password_failed(user),
        ScramError::Protocol(m) => fatal(SqlState::ProtocolViolation, m),
    }
}
