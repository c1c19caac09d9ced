//! What a batch shows while it runs, and what it says and leaves behind at its end.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;
use trustd_notary::text::sanitize;

use trustctl::error::CliError;

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
            (Ok(what), None) => println!("{}", sanitize(&format!("{what} {text}"))),
            (Ok(_), Some(_)) => {}
            (Err(reason), bar) => {
                self.failed += 1;
                let line = sanitize(&format!("failed {text}: {reason}")).into_owned();
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

/// How a batch's summary names its two outcomes.
pub struct Wording {
    pub done: &'static str,
    pub not_done: &'static str,
}

pub const SIGNING: Wording = Wording {
    done: "Signed",
    not_done: "failed",
};

pub const VALIDATING: Wording = Wording {
    done: "Valid",
    not_done: "not valid",
};

/// Each image of the list reported once as it is done, and those that failed remembered
/// for the failed file.
pub struct Tally<'a> {
    list: &'a [String],
    failed: Vec<(usize, String)>,
    progress: Progress,
}

impl<'a> Tally<'a> {
    pub fn new(list: &'a [String]) -> Tally<'a> {
        Tally {
            list,
            failed: Vec::new(),
            progress: Progress::new(list.len()),
        }
    }

    /// Image `index` of the list is done.
    pub fn report(&mut self, index: usize, result: Result<String, String>) {
        if result.is_err() {
            self.failed.push((index, self.list[index].clone()));
        }
        self.progress.report(&self.list[index], &result);
    }

    /// Writes the failed file and prints the summary; an error when any image failed.
    pub fn finish(
        mut self,
        failed_file: &Path,
        started: Instant,
        words: Wording,
    ) -> Result<(), CliError> {
        let (total, failed) = (self.list.len(), self.failed.len());
        write_failed(failed_file, &mut self.failed)?;
        eprintln!(
            "{} {}, {} {failed} of {total} images in {:.1}s{}",
            words.done,
            total - failed,
            words.not_done,
            started.elapsed().as_secs_f64(),
            if failed == 0 {
                String::new()
            } else {
                format!(" (failed images listed in {})", failed_file.display())
            }
        );
        // The summary above is the one line that says it; only the exit code is left.
        if failed == 0 {
            Ok(())
        } else {
            Err(CliError::Reported(1))
        }
    }
}

/// Writes the images that failed, in the order of the list, so the file can be given back
/// as `--file` to try them again.
fn write_failed(path: &Path, failed: &mut [(usize, String)]) -> Result<(), CliError> {
    if failed.is_empty() {
        return Ok(());
    }
    failed.sort_unstable_by_key(|(index, _)| *index);
    let mut text = failed
        .iter()
        .map(|(_, image)| image.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    std::fs::write(path, text)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}
