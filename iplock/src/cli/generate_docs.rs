//! `iplock generate-docs`: man pages and shell completions generated from
//! the clap definitions, so they cannot drift from `--help`. Hidden: it is
//! for packagers and `cargo xtask man`, not for administrators.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;

use crate::error::io_reason;
use crate::error::{Context as _, Result, input, quote};

/// Man pages go in section 8: iplock administers the system and needs root.
const SECTION: &str = "8";

#[derive(Args, Debug)]
#[command(
    hide = true,
    after_help = "Example:\n  iplock generate-docs --out target/man\n  man -l target/man/iplock.8"
)]
pub struct GenerateDocsArgs {
    /// Directory to write the man pages and completions into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// `Cli` is the whole command line definition, which lives in the binary.
pub fn run<Cli: CommandFactory>(args: &GenerateDocsArgs) -> Result<()> {
    let written = generate(&Cli::command(), &args.out)?;
    println!(
        "iplock: wrote {} files to {}",
        written.len(),
        args.out.display()
    );
    Ok(())
}

/// Writes `iplock.8`, one page per subcommand at any depth
/// (`iplock-allow-add.8`), and completions for bash, zsh and fish into
/// `out`; returns the paths written.
pub fn generate(cli: &Command, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).or_else(|e| {
        input(format!(
            "cannot create the output directory {}: {}",
            quote(out.display()),
            io_reason(&e)
        ))
    })?;
    let mut written = Vec::new();

    // clap adds a `help` subcommand when building; its page would say nothing.
    let mut man = public(cli).disable_help_subcommand(true);
    man.build();
    write_pages(&man, None, out, &mut written)?;

    let mut completion = public(cli);
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let path = clap_complete::generate_to(shell, &mut completion, cli.get_name(), out)
            .context(|| format!("writing the {shell} completions into {}", out.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// `cli` without its hidden subcommands: clap_complete would offer them.
/// clap cannot remove a subcommand, so the top level is rebuilt around the
/// visible ones.
fn public(cli: &Command) -> Command {
    let mut public = Command::new(env!("CARGO_PKG_NAME"))
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(cli.is_subcommand_required_set())
        .arg_required_else_help(cli.is_arg_required_else_help_set())
        .args(cli.get_arguments().cloned())
        .subcommands(cli.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = cli.get_about() {
        public = public.about(about.clone());
    }
    if let Some(about) = cli.get_long_about() {
        public = public.long_about(about.clone());
    }
    public
}

/// The page of `cmd` (built, so subcommands carry their full names), then
/// those of its visible subcommands.
fn write_pages(
    cmd: &Command,
    parent: Option<&str>,
    out: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let man = Man::new(cmd.clone())
        .section(SECTION)
        .source(concat!("iplock ", env!("CARGO_PKG_VERSION")))
        .manual("System Manager's Manual");
    let path = out.join(man.get_filename());
    let mut page = Vec::new();
    render(&man, cmd, parent, &mut page)
        .and_then(|()| std::fs::write(&path, &page))
        .context(|| format!("writing {}", path.display()))?;
    written.push(path);
    let name = cmd.get_display_name().unwrap_or(cmd.get_name());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, Some(name), out, written)?;
    }
    Ok(())
}

/// clap_mangen's page with the `Example:` text of `--help` under EXAMPLES
/// (clap_mangen would call it EXTRA) and a pointer to the parent page.
fn render(man: &Man, cmd: &Command, parent: Option<&str>, w: &mut Vec<u8>) -> std::io::Result<()> {
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(w)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(w)?;
    }
    if let Some(after) = cmd.get_after_help() {
        writeln!(w, ".SH EXAMPLES\n.nf")?;
        let text = after.to_string();
        let lines = text.lines().skip_while(|l| l.trim() == "Example:");
        for line in lines {
            writeln!(w, "{}", roff_line(line.trim_start()))?;
        }
        writeln!(w, ".fi")?;
    }
    if cmd.get_version().is_some() {
        man.render_version_section(w)?;
    }
    if let Some(parent) = parent {
        writeln!(w, ".SH \"SEE ALSO\"\n{}({SECTION})", roff_line(parent))?;
    }
    Ok(())
}

/// One line of literal text in roff: backslashes and hyphens escaped (so
/// options copy and paste as typed), and a leading `.` or `'` kept from
/// reading as a request.
fn roff_line(line: &str) -> String {
    let escaped = line.replace('\\', "\\e").replace('-', "\\-");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roff_lines_read_as_typed() {
        assert_eq!(
            roff_line("iplock ban add 192.0.2.66 --for 1d"),
            "iplock ban add 192.0.2.66 \\-\\-for 1d"
        );
        assert_eq!(roff_line(".sources"), "\\&.sources");
        assert_eq!(roff_line("'x' \\n"), "\\&'x' \\en");
    }
}
