//! What a batch shows while it runs, and what it says and leaves behind at its end.
//!
//! Images are reported in the order of the list, whatever order their jobs finish in: a
//! finished image waits for those listed before it, so logs and `--json` read like the list.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;
use trustd_notary::text::sanitize;

use trustctl::error::CliError;

use super::outcome::{self, Outcome, Verb};

/// A bar on a terminal (with failures printed above it), plain lines otherwise, so logs of
/// CI jobs stay readable.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    failed: u64,
}

impl Progress {
    fn new(total: usize) -> Progress {
        let bar = (total > 1 && std::io::stderr().is_terminal()).then(|| {
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

    /// One more image is done (in any order).
    fn tick(&mut self, failed: bool) {
        self.failed += u64::from(failed);
        if let Some(bar) = &self.bar {
            bar.set_message(format!("{} failed", self.failed));
            bar.inc(1);
            if bar.position() == bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        }
    }

    /// Prints an image's line: successes on stdout (unless a bar or JSON stands for them),
    /// failures on stderr, above the bar.
    fn print(&self, line: &str, failed: bool, json: bool) {
        let line = sanitize(line);
        match (failed, &self.bar) {
            (false, Some(_)) => {}
            (false, None) if json => {}
            (false, None) => println!("{line}"),
            (true, Some(bar)) => bar.suspend(|| eprintln!("{line}")),
            (true, None) => eprintln!("{line}"),
        }
    }
}

/// Where a batch's failures are listed for a second try (`--failed FILE`), when they are.
pub enum FailedFile<'a> {
    /// Rewritten on every run: the failures, in list order, or nothing.
    At(&'a Path),
    /// One image named on the command line: its failure is its own message.
    None,
}

/// Each image of the list reported once, in list order, and the whole kept for the summary,
/// the failed file and `--json`.
pub struct Tally<'a> {
    list: &'a [String],
    verb: Verb,
    json: bool,
    outcomes: Vec<Option<Outcome>>,
    /// The first image whose line is not printed yet.
    next: usize,
    progress: Progress,
}

impl<'a> Tally<'a> {
    pub fn new(list: &'a [String], verb: Verb, json: bool) -> Tally<'a> {
        Tally {
            list,
            verb,
            json,
            outcomes: vec![None; list.len()],
            next: 0,
            progress: Progress::new(list.len()),
        }
    }

    /// Image `index` of the list is done.
    pub fn report(&mut self, index: usize, outcome: Outcome) {
        self.progress.tick(outcome.is_err());
        self.outcomes[index] = Some(outcome);
        while let Some(Some(done)) = self.outcomes.get(self.next) {
            let line = outcome::line(self.verb, &self.list[self.next], done);
            self.progress.print(&line, done.is_err(), self.json);
            self.next += 1;
        }
    }

    /// Writes the failed file and the summary (and the JSON document); an error, with the
    /// exit code of the failure when there was one image, 1 when several, if any failed.
    pub fn finish(self, failed_file: FailedFile, started: Instant) -> Result<(), CliError> {
        let outcomes: Vec<Outcome> = self
            .outcomes
            .into_iter()
            .map(|o| o.expect("every image of the list is reported"))
            .collect();
        let failed: Vec<&str> = self
            .list
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| o.is_err())
            .map(|(image, _)| image.as_str())
            .collect();
        let total = self.list.len();
        if let FailedFile::At(path) = failed_file {
            write_failed(path, &failed)?;
            let (done, not_done) = self.verb.summary_words();
            eprintln!(
                "{done} {}, {not_done} {} of {total} images in {:.1}s{}",
                total - failed.len(),
                failed.len(),
                started.elapsed().as_secs_f64(),
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" (failed images listed in {})", path.display())
                }
            );
        }
        if self.json {
            let images: Vec<serde_json::Value> = self
                .list
                .iter()
                .zip(&outcomes)
                .map(|(image, o)| outcome::json(self.verb, image, o))
                .collect();
            let document = serde_json::json!({
                "schema_version": 1,
                "command": self.verb.command(),
                "images": images,
                "succeeded": total - failed.len(),
                "failed": failed.len(),
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&document).expect("JSON values serialize")
            );
        }
        match (failed.len(), outcomes.as_slice()) {
            (0, _) => Ok(()),
            // The lines above said it; only the exit code is left.
            (_, [Err(only)]) => Err(CliError::Reported(only.exit_code())),
            _ => Err(CliError::Reported(1)),
        }
    }
}

/// Writes the images that failed, in the order of the list, so the file can be given back
/// as `--file` to try them again; with none, an existing file is emptied rather than left
/// listing an earlier run's failures.
fn write_failed(path: &Path, failed: &[&str]) -> Result<(), CliError> {
    if failed.is_empty() && !path.exists() {
        return Ok(());
    }
    let text: String = failed.iter().map(|image| format!("{image}\n")).collect();
    std::fs::write(path, text)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}
