//! A real docker-registry (distribution 2.8) on a free loopback port, over TLS from the test
//! CA, open, behind htpasswd (basic auth) or behind a token service; and a docker client
//! configuration (`config.json`, credential helpers) for trustctl to find credentials in.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;

use base64::Engine;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use crate::notary::{free_port, spawn_server, TestCa};
use crate::token::{TokenService, ISSUER};

/// The service name the registry's tokens are issued for.
pub const REGISTRY_SERVICE: &str = "trustd-test-registry";

/// How the registry lets clients in.
pub enum Access<'a> {
    Open,
    Basic { user: &'a str, password: &'a str },
    Token(&'a TokenService),
}

/// Whether the registry serves HTTPS (with the test CA's certificate) or plain HTTP.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tls,
    PlainHttp,
}

pub struct Registry {
    pub ca: Arc<TestCa>,
    /// `127.0.0.1:PORT`, the registry part of image names.
    pub host: String,
    transport: Transport,
    credentials: Option<(String, String)>,
    work: tempfile::TempDir,
    child: Child,
}

/// A manifest the test pushed, with the digest and size computed here, independently of
/// both the registry and trustctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub digest: String,
    pub size: usize,
}

impl Registry {
    pub fn start(ca: Arc<TestCa>, access: Access) -> Registry {
        Registry::start_with(ca, access, Transport::Tls)
    }

    /// A registry serving `transport`.
    pub fn start_with(ca: Arc<TestCa>, access: Access, transport: Transport) -> Registry {
        let work = tempfile::tempdir().unwrap();
        let port = free_port();
        let (cert, key) = ca.server_cert();
        let (auth, credentials) = match access {
            Access::Open => (String::new(), None),
            Access::Basic { user, password } => {
                let hash = bcrypt::hash(password, 4).unwrap();
                let file = work.path().join("htpasswd");
                std::fs::write(&file, format!("{user}:{hash}\n")).unwrap();
                (
                    format!(
                        "auth:\n  htpasswd:\n    realm: trustd-test\n    path: {}\n",
                        file.display()
                    ),
                    Some((user.to_owned(), password.to_owned())),
                )
            }
            Access::Token(token) => (
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {REGISTRY_SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                    token.realm,
                    token.cert.display()
                ),
                None,
            ),
        };
        let tls = match transport {
            Transport::Tls => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            Transport::PlainHttp => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  inmemory: {{}}\nhttp:\n  addr: 127.0.0.1:{port}\n{tls}{auth}"
        );
        let config_path = work.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config_path);
        let child = spawn_server(
            command,
            &work.path().join("registry.log"),
            port,
            "docker-registry",
        );
        Registry {
            ca,
            host: format!("127.0.0.1:{port}"),
            transport,
            credentials,
            work,
            child,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.work.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes a small image (one layer) to `repository:tag`, authenticating as `auth`
    /// (the registry's own user for basic access). The content varies with `seed`.
    pub fn push_image(
        &self,
        repository: &str,
        tag: &str,
        seed: &str,
        auth: Option<(&str, &str)>,
    ) -> Pushed {
        let auth = match auth.or(self
            .credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str())))
        {
            Some((user, password)) => RegistryAuth::Basic(user.to_owned(), password.to_owned()),
            None => RegistryAuth::Anonymous,
        };
        let protocol = match self.transport {
            Transport::Tls => ClientProtocol::Https,
            Transport::PlainHttp => ClientProtocol::Http,
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            extra_root_certificates: vec![Certificate {
                encoding: CertificateEncoding::Pem,
                data: std::fs::read(self.ca.ca_cert()).unwrap(),
            }],
            ..ClientConfig::default()
        });
        let reference =
            Reference::with_tag(self.host.clone(), repository.to_owned(), tag.to_owned());
        let layer = format!("layer of {repository}:{tag} {seed}").into_bytes();
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":["sha256:{}"]}}}}"#,
            hex::encode(Sha256::digest(&layer))
        )
        .into_bytes();
        let digest_of = |b: &[u8]| format!("sha256:{}", hex::encode(Sha256::digest(b)));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest_of(&config),
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(&layer),
                "size": layer.len(),
            }],
        })
        .to_string()
        .into_bytes();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            client
                .auth(&reference, &auth, RegistryOperation::Push)
                .await
                .unwrap_or_else(|e| panic!("auth to push: {e}\n{}", self.log()));
            for blob in [&config, &layer] {
                client
                    .push_blob(&reference, blob, &digest_of(blob))
                    .await
                    .unwrap_or_else(|e| panic!("push blob: {e}\n{}", self.log()));
            }
            client
                .push_manifest_raw(
                    &reference,
                    manifest.clone(),
                    "application/vnd.oci.image.manifest.v1+json"
                        .parse()
                        .unwrap(),
                )
                .await
                .unwrap_or_else(|e| panic!("push manifest: {e}\n{}", self.log()));
        });
        Pushed {
            digest: digest_of(&manifest),
            size: manifest.len(),
        }
    }

    /// Pushes a multi-platform index to `repository:tag`: one small image per (os, arch),
    /// each also tagged `tag-os-arch`. Returns the index and the platform manifests.
    pub fn push_index(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[(&str, &str)],
    ) -> (Pushed, Vec<Pushed>) {
        self.push_index_as(repository, tag, platforms, None)
    }

    /// [`Registry::push_index`] as a given user.
    pub fn push_index_as(
        &self,
        repository: &str,
        tag: &str,
        platforms: &[(&str, &str)],
        auth: Option<(&str, &str)>,
    ) -> (Pushed, Vec<Pushed>) {
        let images: Vec<Pushed> = platforms
            .iter()
            .map(|(os, arch)| {
                self.push_image(repository, &format!("{tag}-{os}-{arch}"), arch, auth)
            })
            .collect();
        let manifests: Vec<serde_json::Value> = images
            .iter()
            .zip(platforms)
            .map(|(image, (os, arch))| {
                serde_json::json!({
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": image.digest,
                    "size": image.size,
                    "platform": {"os": os, "architecture": arch},
                })
            })
            .collect();
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": manifests,
        })
        .to_string()
        .into_bytes();
        self.put_manifest(
            repository,
            tag,
            &index,
            "application/vnd.oci.image.index.v1+json",
        );
        (
            Pushed {
                digest: format!("sha256:{}", hex::encode(Sha256::digest(&index))),
                size: index.len(),
            },
            images,
        )
    }

    /// PUTs a manifest (as the registry's user, if it has one) and asserts the registry took it.
    pub fn put_manifest(&self, repository: &str, tag: &str, body: &[u8], media_type: &str) {
        self.curl(&[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &String::from_utf8_lossy(body),
            &format!(
                "{}://{}/v2/{repository}/manifests/{tag}",
                self.scheme(),
                self.host
            ),
        ]);
    }

    /// Uploads a blob (monolithic POST + PUT, as the registry's user if it has one).
    pub fn put_blob(&self, repository: &str, body: &[u8]) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(body)));
        let headers = self.curl(&[
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
            &format!(
                "{}://{}/v2/{repository}/blobs/uploads/",
                self.scheme(),
                self.host
            ),
        ]);
        let location = String::from_utf8_lossy(&headers)
            .lines()
            .find_map(|l| {
                l.strip_prefix("Location: ")
                    .or_else(|| l.strip_prefix("location: "))
                    .map(|v| v.trim().to_owned())
            })
            .expect("upload location");
        let separator = if location.contains('?') { '&' } else { '?' };
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), body).unwrap();
        self.curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.path().display()),
            &format!("{location}{separator}digest={digest}"),
        ]);
        digest
    }

    /// GETs a path of the registry API (as the registry's user, if it has one).
    pub fn get(&self, path: &str) -> Vec<u8> {
        self.curl(&[
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
            &format!("{}://{}{path}", self.scheme(), self.host),
        ])
    }

    fn scheme(&self) -> &'static str {
        match self.transport {
            Transport::Tls => "https",
            Transport::PlainHttp => "http",
        }
    }

    fn curl(&self, args: &[&str]) -> Vec<u8> {
        let mut cmd = Command::new("curl");
        cmd.args(["--silent", "--show-error", "--fail", "--cacert"])
            .arg(self.ca.ca_cert());
        if let Some((user, password)) = &self.credentials {
            cmd.arg("--user").arg(format!("{user}:{password}"));
        }
        let out = cmd.args(args).output().expect("curl runs");
        assert!(
            out.status.success(),
            "curl {args:?}: {}
{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        out.stdout
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A docker client configuration directory (what DOCKER_CONFIG points at).
pub struct DockerConfig {
    pub dir: tempfile::TempDir,
}

impl DockerConfig {
    /// `auths` entries with base64 `user:password`, as `docker login` writes them.
    pub fn with_logins(logins: &[(&str, &str, &str)]) -> DockerConfig {
        let auths: serde_json::Map<String, serde_json::Value> = logins
            .iter()
            .map(|(host, user, password)| {
                let auth =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                (host.to_string(), serde_json::json!({ "auth": auth }))
            })
            .collect();
        DockerConfig::with(serde_json::json!({ "auths": auths }))
    }

    /// A `credHelpers` entry for `host` naming a helper program that answers with `user`
    /// and `password`; its directory must be put first on PATH (see `path_with_helpers`).
    pub fn with_helper(host: &str, user: &str, password: &str) -> DockerConfig {
        let config =
            DockerConfig::with(serde_json::json!({ "credHelpers": { host: "trustdtest" } }));
        let helper = config.dir.path().join("bin/docker-credential-trustdtest");
        std::fs::create_dir_all(helper.parent().unwrap()).unwrap();
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread server\necho \"$server\" >> \"$(dirname \"$0\")/asked\"\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{password}\"}}' \"$server\"\n"
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        config
    }

    fn with(value: serde_json::Value) -> DockerConfig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), value.to_string()).unwrap();
        DockerConfig { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// PATH with this configuration's credential helpers first.
    pub fn path_with_helpers(&self) -> String {
        format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// The servers the credential helper was asked about, in order.
    pub fn helper_requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("bin/asked"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config.json")
    }
}
