//! What a batch shows while it runs.

use std::io::IsTerminal;

/// A bar on a terminal (with failures printed above it as they happen), plain lines
/// otherwise, so logs of CI jobs stay readable.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    failed: u64,
}

impl Progress {
    pub fn new(total: usize) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "[{bar:30}] {pos}/{len} {percent}%  {msg}  {elapsed}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message("0 failed");
            bar
        });
        Progress { bar, failed: 0 }
    }

    /// One image is done: `Ok(what was done)` or `Err(why not)`.
    pub fn report(&mut self, text: &str, result: &Result<String, String>) {
        match (result, &self.bar) {
            (Ok(what), None) => println!("{what} {text}"),
            (Ok(_), Some(_)) => {}
            (Err(reason), bar) => {
                self.failed += 1;
                let line = format!("failed {text}: {reason}");
                match bar {
                    Some(bar) => bar.suspend(|| eprintln!("{line}")),
                    None => eprintln!("{line}"),
                }
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} failed", self.failed));
            bar.inc(1);
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
    }
}
