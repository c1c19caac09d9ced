//! Shell completions and man pages, generated from the same clap definitions trustctl parses
//! its arguments with, so they cannot drift from the binary they ship with. `scripts/package`
//! puts both into the Debian package; users can also print a completion script themselves.

use std::path::Path;

use clap::Command;

#[derive(clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args)]
pub struct ManArgs {
    /// The directory to write trustctl.1 and one page per subcommand into.
    #[arg(long, value_name = "DIR")]
    out: std::path::PathBuf,
}

/// Prints the completion script for `args.shell` on stdout.
pub fn completions(args: CompletionsArgs, mut command: Command) {
    clap_complete::generate(args.shell, &mut command, "trustctl", &mut std::io::stdout());
}

/// Writes trustctl(1) and trustctl-SUBCOMMAND(1) (trustctl-key-generate(1), ...) into the
/// directory; hidden subcommands get no page.
pub fn man_pages(args: ManArgs, mut command: Command) -> std::io::Result<()> {
    if !args.out.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", args.out.display()),
        ));
    }
    command.build();
    write_pages(&command, "trustctl", &args.out)
}

fn write_pages(command: &Command, name: &str, dir: &Path) -> std::io::Result<()> {
    let page = command
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .section("1")
        .manual("trustctl")
        .render(&mut roff)?;
    std::fs::write(dir.join(format!("{name}.1")), roff)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
