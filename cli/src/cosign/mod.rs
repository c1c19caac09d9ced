//! Cosign-style image signatures (DESIGN section 5), made with keys in trustd.
//!
//! For an image `repo@sha256:D` the signatures live in the same repository under the tag
//! `sha256-D.sig`: an OCI image manifest with one layer per signature. Each layer's blob is
//! the simple-signing payload naming the image, and its `dev.cosignproject.cosign/signature`
//! annotation holds the base64 DER ECDSA signature over the payload bytes. A new signer adds
//! a layer; the same signer signing again changes nothing.

pub mod payload;
pub mod signature;

pub use payload::Payload;
pub use signature::{sign_digest, verify_digest, SignOutcome, SignatureManifest, UploadedConfigs};

/// The tag under which `digest`'s signatures are stored.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
