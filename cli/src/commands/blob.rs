//! `trustctl sign-blob` / `verify-blob`: detached signatures over arbitrary files, in the
//! format cosign uses (base64 of the DER ECDSA signature).

use std::io::Read;
use std::path::{Path, PathBuf};
use trustctl::client::Trustd;

use base64::Engine;
use clap::Args;
use sha2::{Digest, Sha256, Sha384};
use trustctl::client;
use trustctl::error::{io_reason, read_text, CliError};
use trustd_notary::verify::{self, Signed};
use trustd_proto as pb;

/// Files up to this size are sent whole, so trustd hashes (and audits) what it signs; larger
/// ones are hashed here and only the digest crosses the socket.
const INLINE_LIMIT: usize = 64 * 1024;

#[derive(Args)]
pub struct SignBlobArgs {
    /// The key in trustd to sign with, by name.
    #[arg(long, value_name = "NAME")]
    key: String,
    /// Write the signature here instead of stdout.
    #[arg(long, short, visible_alias = "output-signature")]
    output: Option<PathBuf>,
    /// File to sign (`-` for stdin).
    file: PathBuf,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("verifier").required(true).args(["key", "public_key"])))]
pub struct VerifyBlobArgs {
    /// The key in trustd to check against (by name, as --key means when signing).
    #[arg(long, value_name = "NAME")]
    key: Option<String>,
    /// A PEM public key file to check against instead (what cosign's verify-blob calls --key).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
    /// Signature file (base64, as sign-blob writes it).
    #[arg(long)]
    signature: PathBuf,
    /// The signed file (`-` for stdin).
    file: PathBuf,
}

/// The file's SHA-256 and SHA-384 and, when it is small or `keep_all` is set, its bytes.
struct Blob {
    digest: [u8; 32],
    digest384: [u8; 48],
    bytes: Option<Vec<u8>>,
}

impl Blob {
    /// What a verifier checks: the bytes when they were kept, else the digests.
    fn signed(&self) -> Signed<'_> {
        match &self.bytes {
            Some(bytes) => Signed::Message(bytes),
            None => Signed::Digests {
                sha256: self.digest,
                sha384: self.digest384,
            },
        }
    }
}

fn read_blob(path: &Path, keep_all: bool) -> Result<Blob, CliError> {
    let mut reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).map_err(|e| {
            CliError::Usage(format!("cannot read {}: {}", path.display(), io_reason(&e)))
        })?)
    };
    let mut hasher = Sha256::new();
    let mut hasher384 = Sha384::new();
    let mut kept = Vec::new();
    let mut keeping = true;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            CliError::Failed(format!("cannot read {}: {}", path.display(), io_reason(&e)))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        hasher384.update(&buf[..n]);
        if keeping {
            kept.extend_from_slice(&buf[..n]);
            if !keep_all && kept.len() > INLINE_LIMIT {
                keeping = false;
                kept = Vec::new();
            }
        }
    }
    Ok(Blob {
        digest: hasher.finalize().into(),
        digest384: hasher384.finalize().into(),
        bytes: keeping.then_some(kept),
    })
}

pub async fn sign(trustd: &Trustd, args: SignBlobArgs) -> Result<(), CliError> {
    let mut client = client::connect(trustd).await?;
    let key = client::key_info(&mut client, &args.key).await?;
    let algorithm = client::signature_algorithm(key.algorithm)
        .ok_or_else(|| CliError::Failed("trustd reported an unknown key algorithm".into()))?;
    let whole_message = algorithm == pb::SignatureAlgorithm::Ed25519;
    let blob = read_blob(&args.file, whole_message)?;
    let payload = match (&blob.bytes, algorithm) {
        (Some(bytes), _) => pb::sign_request::Payload::Message(bytes.clone()),
        (None, pb::SignatureAlgorithm::EcdsaP384Sha384) => {
            pb::sign_request::Payload::Sha384Digest(blob.digest384.to_vec())
        }
        (None, _) => pb::sign_request::Payload::Sha256Digest(blob.digest.to_vec()),
    };
    let encoding = match algorithm {
        pb::SignatureAlgorithm::EcdsaP256Sha256 | pb::SignatureAlgorithm::EcdsaP384Sha384 => {
            pb::SignatureEncoding::Der
        }
        _ => pb::SignatureEncoding::Raw,
    };
    client::announce_touch(&key);
    let response = client
        .sign(pb::SignRequest {
            key: client::key_selector(&args.key),
            algorithm: algorithm as i32,
            encoding: encoding as i32,
            payload: Some(payload),
        })
        .await
        .map_err(|s| CliError::from_status(&format!("cannot sign with {:?}", args.key), s))?
        .into_inner();
    // Check the device's work before handing it out: a faulty token must not produce a
    // signature nobody can verify.
    verify::verify(&key.public_key_der, blob.signed(), &response.signature).map_err(|e| {
        CliError::Failed(format!(
            "trustd returned a signature that does not verify against key {:?} ({e}); not writing it",
            args.key
        ))
    })?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&response.signature);
    match args.output {
        Some(path) => {
            std::fs::write(&path, &encoded)
                .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("Wrote signature to {}", path.display());
        }
        None => println!("{encoded}"),
    }
    Ok(())
}

pub async fn verify(trustd: &Trustd, args: VerifyBlobArgs) -> Result<(), CliError> {
    let spki =
        super::verifying_key::resolve(trustd, args.key.as_deref(), args.public_key.as_deref())
            .await?
            .expect("clap requires --key or --public-key");
    let signature_text = read_text(&args.signature, "the signature")?;
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature_text.trim())
        .map_err(|e| {
            CliError::Usage(format!(
                "{} is not a base64 signature: {e}",
                args.signature.display()
            ))
        })?;
    let blob = read_blob(&args.file, !verify::verifies_prehashed(&spki))?;
    verify::verify(&spki, blob.signed(), &signature)
        .map_err(|e| CliError::Failed(format!("signature verification failed: {e}")))?;
    println!("Verified OK");
    Ok(())
}
