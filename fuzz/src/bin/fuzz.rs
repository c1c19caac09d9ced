//! The libFuzzer entry point for every target: `TRUSTD_FUZZ_TARGET` names the one to run
//! (`scripts/fuzz` sets it), so one instrumented build serves them all.

#![no_main]

use std::sync::OnceLock;

fn selected() -> &'static trustd_fuzz::Target {
    static SELECTED: OnceLock<&'static trustd_fuzz::Target> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let name = std::env::var("TRUSTD_FUZZ_TARGET").unwrap_or_default();
        trustd_fuzz::target(&name).unwrap_or_else(|| {
            let names: Vec<&str> = trustd_fuzz::TARGETS.iter().map(|t| t.name).collect();
            eprintln!(
                "TRUSTD_FUZZ_TARGET={name:?} is not a target; one of: {}",
                names.join(", ")
            );
            std::process::exit(2)
        })
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| (selected().run)(data));
