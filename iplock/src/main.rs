use clap::{Parser, Subcommand};
use iplock::cli as cmd;

/// Port knocking in the kernel's XDP fast path: a source that sends the
/// secret sequence of packets may open new connections to the protected
/// ports for a short window; everyone else sees filtered ports.
#[derive(Parser, Debug)]
#[command(name = "iplock", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Attach the filter to interfaces and pin it in bpffs, then exit.
    Load(cmd::load::LoadArgs),
    /// Show interfaces, configuration, counters, knocking and open sources, bans.
    Status(cmd::status::StatusArgs),
    /// Detach the filter everywhere and remove its pins.
    Unload(cmd::unload::UnloadArgs),
    /// Load and stay in the foreground: log events, sweep, reload on SIGHUP.
    Run(cmd::run::RunArgs),
    /// Apply changed settings to the running filter, keeping its state.
    Reload(cmd::reload::ReloadArgs),
    /// Validate settings as load does, touching nothing; optionally say what a reload would change.
    Check(cmd::check::CheckArgs),
    /// Change the allow list of the running filter.
    Allow(cmd::allow::AllowArgs),
    /// Ban or unban sources in the running filter.
    Ban(cmd::ban::BanArgs),
    /// Send a knock sequence to a server, optionally try the protected port.
    Knock(cmd::knock::KnockArgs),
    /// Count the knock sequences an attacker must search, and how long it takes.
    Calc(cmd::calc::CalcArgs),
    /// Make the shared secret of rotating knocks.
    Secret(cmd::secret::SecretArgs),
    /// Write man pages and shell completions generated from these definitions.
    GenerateDocs(cmd::generate_docs::GenerateDocsArgs),
}

fn main() {
    let cli = Cli::parse();
    init_logging(&cli.command);
    let result = match &cli.command {
        Command::Load(a) => cmd::load::run(a),
        Command::Status(a) => cmd::status::run(a),
        Command::Unload(a) => cmd::unload::run(a),
        Command::Run(a) => cmd::run::run(a),
        Command::Reload(a) => cmd::reload::run(a),
        Command::Check(a) => cmd::check::run(a),
        Command::Allow(a) => cmd::allow::run(a),
        Command::Ban(a) => cmd::ban::run(a),
        Command::Knock(a) => cmd::knock::run(a),
        Command::Calc(a) => cmd::calc::run(a),
        Command::Secret(a) => cmd::secret::run(a),
        Command::GenerateDocs(a) => cmd::generate_docs::run::<Cli>(a),
    };
    if let Err(e) = result {
        eprintln!("iplock: {e}");
        std::process::exit(e.exit_code());
    }
}

/// RUST_LOG (default info), or `iplock run --log-level`, which replaces it
/// whole. `iplock run` loads the XDP program to log at the same level; every
/// other command loads it with its log off, since none reads it.
fn init_logging(command: &Command) {
    let mut logger = env_logger::Builder::new();
    let flag = match command {
        Command::Run(a) => a.log_level,
        _ => None,
    };
    match flag {
        Some(level) => {
            logger.filter_level(level.filter());
            if let Ok(style) = std::env::var("RUST_LOG_STYLE") {
                logger.parse_write_style(&style);
            }
        }
        None => {
            logger.parse_env(env_logger::Env::default().default_filter_or("info"));
        }
    }
    logger.init();
    if let Command::Run(_) = command {
        iplock::kernel::log::set_level(log::max_level());
    }
}
