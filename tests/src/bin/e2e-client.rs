//! `trustd-e2e-client SOCKET KEY [COUNT]`: Sign calls over the gRPC API, for tests that need
//! them made by another uid (run under setpriv). With one call, prints `OK` or the gRPC status
//! code and message; with COUNT calls, one JSON line: how many ended with each code, and the
//! longest status message seen.
//!
//! KEY may be `@NAME:LENGTH` for a key name of LENGTH repetitions of NAME's first letter (an
//! oversized name), or `#ID` to select by key ID.

use std::collections::BTreeMap;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, key, count) = match args.as_slice() {
        [_, socket, key] => (socket, key, None),
        [_, socket, key, count] => (socket, key, Some(count.parse::<usize>().expect("COUNT"))),
        _ => {
            eprintln!("usage: trustd-e2e-client SOCKET KEY [COUNT]");
            std::process::exit(2);
        }
    };
    let mut client = match trustctl::client::connect_socket(std::path::Path::new(socket)).await {
        Ok(client) => client,
        Err(e) => {
            println!("CONNECT {e}");
            std::process::exit(1);
        }
    };
    let selector = if let Some(spec) = key.strip_prefix('@') {
        let (name, length) = spec.split_once(':').expect("@NAME:LENGTH");
        let letter = name.chars().next().unwrap_or('k');
        trustd_proto::key_selector::Selector::Name(
            letter.to_string().repeat(length.parse().unwrap()),
        )
    } else if let Some(id) = key.strip_prefix('#') {
        trustd_proto::key_selector::Selector::KeyId(id.to_owned())
    } else {
        trustd_proto::key_selector::Selector::Name(key.clone())
    };
    let mut request = trustd_e2e::sign_request(
        "",
        trustd_proto::SignatureAlgorithm::EcdsaP256Sha256,
        trustd_proto::SignatureEncoding::Raw,
        b"from nobody".to_vec(),
    );
    request.key = Some(trustd_proto::KeySelector {
        selector: Some(selector),
    });
    let Some(count) = count else {
        match client.sign(request).await {
            Ok(_) => println!("OK"),
            Err(status) => println!("{:?} {}", status.code(), status.message()),
        }
        return;
    };
    let mut codes: BTreeMap<String, u64> = BTreeMap::new();
    let mut longest = 0;
    for _ in 0..count {
        let code = match client.sign(request.clone()).await {
            Ok(_) => "Ok".to_owned(),
            Err(status) => {
                longest = longest.max(status.message().len());
                format!("{:?}", status.code())
            }
        };
        *codes.entry(code).or_default() += 1;
    }
    println!(
        "{}",
        serde_json::json!({ "codes": codes, "longest_message": longest })
    );
}
