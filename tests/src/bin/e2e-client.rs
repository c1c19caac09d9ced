//! `trustd-e2e-client SOCKET KEY`: one Sign call over the gRPC API, for tests that need it
//! made by another uid (run under setpriv). Prints `OK` or the gRPC status code.

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, socket, key] = args.as_slice() else {
        eprintln!("usage: trustd-e2e-client SOCKET KEY");
        std::process::exit(2);
    };
    let mut client = match trustctl::client::connect(std::path::Path::new(socket)).await {
        Ok(client) => client,
        Err(e) => {
            println!("CONNECT {e}");
            std::process::exit(1);
        }
    };
    let request = trustd_e2e::sign_request(
        key,
        trustd_proto::SignatureAlgorithm::EcdsaP256Sha256,
        trustd_proto::SignatureEncoding::Raw,
        b"from nobody".to_vec(),
    );
    match client.sign(request).await {
        Ok(_) => println!("OK"),
        Err(status) => println!("{:?} {}", status.code(), status.message()),
    }
}
