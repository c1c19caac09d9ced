//! The image registry side of signing: who the user is to a registry (docker's
//! `config.json` and credential helpers) and what a tag points at (its manifest's digest and
//! size), read through the OCI distribution API.

pub mod client;

pub mod error;
pub mod manifest;
pub mod plain_http;
pub mod target;

pub use manifest::{
    reference, Fetched, ManifestRef, PlatformManifest, RegistryClient, RegistryError,
    RegistryOptions,
};
pub use plain_http::InsecureRegistries;
pub use target::RegistryRef;
pub use trustd_notary::client::credentials::{Credentials, CredentialsError};
