//! trustd's man pages: trustd(8) from the same clap definitions the daemon parses with, plus
//! what clap cannot know (signals, files, exit status); trustd.toml(5) from the annotated
//! example configuration, which is also the packaged `/etc/trustd/trustd.toml`, so the page,
//! the conffile and the parser's defaults are one text.

use clap_mangen::roff::{bold, roman, Roff};

/// The example configuration the package installs and trustd.toml(5) shows.
pub const EXAMPLE_CONFIG: &str = include_str!("../../config/trustd.example.toml");

/// trustd(8) as roff.
pub fn page(command: clap::Command) -> Vec<u8> {
    let man = clap_mangen::Man::new(command).section("8").manual("trustd");
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    man.render_title(&mut out).expect("render");
    man.render_name_section(&mut out).expect("render");
    man.render_synopsis_section(&mut out).expect("render");
    man.render_description_section(&mut out).expect("render");
    man.render_options_section(&mut out).expect("render");
    let mut roff = Roff::new();
    section(
        &mut roff,
        "SIGNALS",
        &[
            ("SIGHUP", "Reload the access policy from the configuration file and reopen the audit log (after rotation). A policy that does not load leaves the old one in force."),
            ("SIGTERM, SIGINT", "Stop accepting connections, let requests in flight finish (at most 30 s), write the last audit checkpoint, exit."),
        ],
    );
    section(
        &mut roff,
        "ENVIRONMENT",
        &[
            ("TRUSTD_LOG", "Log filter, as RUST_LOG (default: info)."),
            ("TRUSTD_LOG_FORMAT", "text, json (one JSON object per line) or journald (native journal fields). Default: journald when stderr is the journal stream systemd set up, text otherwise."),
            ("CREDENTIALS_DIRECTORY", "Set by systemd: where PINs and auth values named { credential = \"...\" } in the configuration are read from."),
            ("LISTEN_FDS, LISTEN_PID", "Set by systemd socket activation: trustd serves the socket it is handed."),
        ],
    );
    section(
        &mut roff,
        "FILES",
        &[
            ("/etc/trustd/trustd.toml", "The configuration; see trustd.toml(5)."),
            ("/etc/credstore/hsm-pin, /etc/credstore.encrypted/hsm-pin", "The token PIN, plain (mode 0600, root) or encrypted with systemd-creds, found by the unit's LoadCredential=hsm-pin."),
            ("/var/lib/trustd/", "The key inventory: public keys, certificates and device handles, never private key material."),
            ("/var/log/trustd/audit.jsonl", "The audit log, one chained JSON record per operation; check it with trustctl audit verify."),
            ("/run/trustd/trustd.sock", "The signing socket (trustd.socket)."),
        ],
    );
    section(
        &mut roff,
        "EXIT STATUS",
        &[
            (
                "0",
                "Stopped by a signal after draining, or --check-config found no problem.",
            ),
            (
                "1",
                "A failure at startup or while running (the reason is logged).",
            ),
            ("2", "The configuration cannot be read or is not valid."),
        ],
    );
    roff.control("SH", ["SEE ALSO"]).text([roman(
        "trustd.toml(5), trustctl(1), systemd.socket(5), systemd.exec(5), softhsm2-util(1)",
    )]);
    roff.to_writer(&mut out).expect("render");
    man.render_version_section(&mut out).expect("render");
    out
}

/// trustd.toml(5) as roff: what the file is, how it is checked, and the annotated example.
pub fn config_page() -> Vec<u8> {
    let mut roff = Roff::new();
    roff.control("TH", ["TRUSTD.TOML", "5", "", "", "trustd"]);
    roff.control("SH", ["NAME"])
        .text([roman("trustd.toml - trustd configuration")]);
    roff.control("SH", ["SYNOPSIS"])
        .text([bold("/etc/trustd/trustd.toml")]);
    roff.control("SH", ["DESCRIPTION"]).text([roman(
        "trustd reads one TOML file at startup and on SIGHUP (the policy part). Every key is checked: an unknown or misspelled key, a value out of range or a policy rule that matches nobody stops trustd with a message naming the key, and trustd --check-config reports the same without starting anything.",
    )]);
    roff.control("PP", []).text([roman(
        "The tables are: the top-level state_dir; [socket], where local callers connect; [limits], what any caller can make trustd hold; [audit], the audit log and its signed checkpoints; one [[backend]] per device (type = \"pkcs11\", \"tpm\" or \"piv\"); [[policy.rule]] tables, who may do what with which keys; [tls_listener] and [notary_signer], for remote callers and notary-server; [metrics], the Prometheus endpoint. PINs and auth values are never written in this file: they name a systemd credential ({ credential = \"ID\" }) or a file only trustd's user can read ({ file = \"PATH\" }).",
    )]);
    roff.control("SH", ["EXAMPLE"]).text([roman(
        "The annotated example below is the file the package installs; each comment documents the key under it.",
    )]);
    roff.control("PP", []).control("nf", []);
    for line in EXAMPLE_CONFIG.lines() {
        // A leading dot or quote would be read as a roff request.
        if line.starts_with('.') || line.starts_with('\'') {
            roff.text([roman("\\&"), roman(line)]);
        } else {
            roff.text([roman(line)]);
        }
    }
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"])
        .text([roman("trustd(8), trustctl(1)")]);
    roff.render().into_bytes()
}

fn section(roff: &mut Roff, title: &str, entries: &[(&str, &str)]) {
    roff.control("SH", [title]);
    for (term, text) in entries {
        roff.control("TP", [])
            .text([bold(*term)])
            .text([roman(*text)]);
    }
}
