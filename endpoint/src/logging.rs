//! The one log set-up of both daemons and the CLI: `tracing` lines on standard error at a level
//! the command line chose, unless `RUST_LOG` says otherwise.

/// Installs the subscriber once per process (a second call keeps the first): `default_level`
/// (`error`, `warn`, `info`, `debug`, `trace`, or any `EnvFilter` directive) applies when
/// `RUST_LOG` is unset or unreadable.
pub fn init(default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
