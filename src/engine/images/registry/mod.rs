//! The registry protocol (distribution spec): sessions with their
//! authentication, pull, push, and Docker's stored credentials.

mod auth;
mod client;
mod credentials;
mod pull;
mod push;

pub use auth::{parse_challenges, token_from_answer, token_url, Challenge};
pub use client::{is_loopback, RegistryOptions};
pub use credentials::{auth_key, login, logout, CredentialStore, DOCKER_HUB_AUTH_KEY};
pub use pull::{pull, PullOptions, Pulled, MANIFEST_ACCEPT};
pub use push::{push, PushOptions, Pushed};
