//! trustd as a service: its socket, signals, socket activation and health.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use trustd_e2e::*;
use trustd_proto::{KeyAlgorithm, SignatureAlgorithm, SignatureEncoding};

#[test]
fn socket_gets_the_configured_mode_stale_sockets_are_replaced_live_ones_kept() {
    let hsm = SoftHsm::new("sockets");
    let mut options = Options::for_token(&hsm);
    options.socket_mode = "0660".into();
    let mut trustd = Trustd::configure(&hsm, &options);
    // A socket file left by a dead trustd.
    drop(std::os::unix::net::UnixListener::bind(&trustd.socket).unwrap());
    trustd.spawn();
    trustd.wait_ready();
    let meta = std::fs::metadata(&trustd.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    trustd.ok(&["key", "list"]);

    // A second trustd on the same socket refuses to start and leaves the first alone.
    let out = Command::new(bin("trustd"))
        .arg("--config")
        .arg(&trustd.config)
        .env("SOFTHSM2_CONF", &hsm.conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("another trustd is already serving"),
        "{}",
        stderr(&out)
    );
    trustd.ok(&["key", "list"]);

    // A clean stop removes the socket file.
    assert!(trustd.stop().success());
    assert!(!trustd.socket.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests() {
    let hsm = SoftHsm::new("drain");
    let mut trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let mut client = trustd.client().await;
    // RSA key generation takes SoftHSM long enough to still be running when SIGTERM arrives.
    let slow = tokio::spawn(async move {
        client
            .generate_key(generate_request("slow", KeyAlgorithm::Rsa3072))
            .await
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !trustd.log_text().contains("token connected") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    trustd.signal(Signal::SIGTERM);
    let reply = slow.await.unwrap();
    let key = reply
        .expect("the in-flight request completes")
        .into_inner()
        .key
        .unwrap();
    assert_eq!(key.name, "slow");
    let status = tokio::task::spawn_blocking(move || {
        let status = trustd.stop();
        (status, trustd)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "trustd exited with {}", status.0);
    let log = status.1.log_text();
    assert!(log.contains("draining in-flight requests"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy() {
    let hsm = SoftHsm::new("reload");
    let trustd = Trustd::start(&hsm, &Options::for_token(&hsm));
    let mut client = trustd.client().await;
    client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap();
    let sign = || {
        sign_request(
            "k",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"m".to_vec(),
        )
    };
    client.sign(sign()).await.unwrap();

    // Root loses `sign`; SIGHUP applies it without a restart.
    let mut options = Options::for_token(&hsm);
    options.policy = r#"
[[policy.rule]]
users = ["root"]
keys = ["*"]
operations = ["list"]
"#
    .into();
    trustd.write_config(&options, &trustd.pin_file());
    trustd.signal(Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match client.sign(sign()).await {
            Err(e) if e.code() == tonic::Code::PermissionDenied => break,
            _ if Instant::now() > deadline => panic!("policy not reloaded:\n{}", trustd.log_text()),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // A broken config on reload keeps the previous policy.
    std::fs::write(&trustd.config, "this is not toml [").unwrap();
    trustd.signal(Signal::SIGHUP);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(trustd
        .log_text()
        .contains("policy reload failed; keeping the previous policy"));
    let err = client.sign(sign()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    client
        .list_keys(trustd_proto::ListKeysRequest {})
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_and_health_service() {
    let hsm = SoftHsm::new("activation");
    let trustd = Trustd::configure(&hsm, &Options::for_token(&hsm));
    // systemd-socket-activate binds the socket and passes it as fd 3, like trustd.socket does.
    let mut activator = Command::new("systemd-socket-activate")
        .arg("--listen")
        .arg(&trustd.socket)
        .arg(format!("--setenv=SOFTHSM2_CONF={}", hsm.conf.display()))
        .arg(bin("trustd"))
        .arg("--config")
        .arg(&trustd.config)
        .env("SOFTHSM2_CONF", &hsm.conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (apt-get install systemd)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !trustd.socket.exists() {
        assert!(Instant::now() < deadline, "activator did not bind");
        std::thread::sleep(Duration::from_millis(10));
    }
    // The first connection starts trustd on the inherited socket.
    let channel_result = trustctl::client::connect_socket(&trustd.socket).await;
    let result = async {
        let mut client = channel_result?;
        client
            .generate_key(generate_request("activated", KeyAlgorithm::EcdsaP256))
            .await
            .map_err(|s| trustctl::error::CliError::from_status("generate", s))?;
        Ok::<_, trustctl::error::CliError>(())
    }
    .await;

    // The standard gRPC health service answers SERVING for the signer.
    let health = async {
        let channel = tonic::transport::Endpoint::from_static("http://trustd.invalid")
            .connect_with_connector(tower_service(trustd.socket.clone()))
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "trustd.v1.Signer".into(),
            })
            .await
            .map(|r| r.into_inner().status)
    }
    .await;

    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(activator.id() as i32),
        Signal::SIGTERM,
    );
    let _ = activator.wait();
    result.expect("trustd serves on the socket systemd handed over");
    assert_eq!(
        health.expect("health check"),
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

fn tower_service(
    path: std::path::PathBuf,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_| {
        let path = path.clone();
        async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    })
}

#[test]
fn tells_systemd_when_ready_reloading_and_stopping_and_dumps_no_core() {
    let hsm = SoftHsm::new("notify");
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut options = Options::for_token(&hsm);
    options.env = vec![("NOTIFY_SOCKET".into(), notify_path.display().to_string())];
    let mut trustd = Trustd::start(&hsm, &options);
    let next = || {
        let mut buf = [0u8; 512];
        let n = notify.recv(&mut buf).expect("a notification from trustd");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(next().contains("READY=1"));

    // Core dumps are off (PINs pass through this process).
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", trustd.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");

    trustd.signal(Signal::SIGHUP);
    assert!(next().contains("RELOADING=1"));
    assert!(next().contains("READY=1"));
    trustd.signal(Signal::SIGTERM);
    assert!(next().contains("STOPPING=1"));
    assert!(trustd.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_to_sign_once_the_audit_log_cannot_be_written() {
    let hsm = SoftHsm::new("audit-full");
    let mut options = Options::for_token(&hsm);
    // Every write to /dev/full fails with ENOSPC: a full disk under the audit log.
    options.audit_path = Some("/dev/full".into());
    let trustd = Trustd::start(&hsm, &options);
    let mut client = trustd.client().await;
    client
        .generate_key(generate_request("k", KeyAlgorithm::EcdsaP256))
        .await
        .unwrap();
    let sign = || {
        sign_request(
            "k",
            SignatureAlgorithm::EcdsaP256Sha256,
            SignatureEncoding::Raw,
            b"m".to_vec(),
        )
    };
    // The first failed write (the generate record) switches signing off.
    let deadline = Instant::now() + Duration::from_secs(5);
    let err = loop {
        match client.sign(sign()).await {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(_) => panic!("trustd kept signing without an audit trail"),
        }
    };
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("audit log cannot be written"),
        "{}",
        err.message()
    );
    // And it stays off, while the daemon keeps answering.
    assert_eq!(
        client.sign(sign()).await.unwrap_err().code(),
        tonic::Code::Unavailable
    );
    client
        .list_keys(trustd_proto::ListKeysRequest {})
        .await
        .unwrap();
}

#[test]
fn a_config_that_cannot_be_read_is_one_line_on_stderr() {
    for check in [false, true] {
        let mut command = Command::new(bin("trustd"));
        if check {
            command.arg("--check-config");
        }
        let out = command
            .args(["--config", "/nonexistent/trustd.toml"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert_eq!(
            stderr(&out),
            "trustd: cannot read config /nonexistent/trustd.toml: no such file; give the right path with --config\n",
            "--check-config: {check}"
        );
    }
}
