//! The daemon's log filter, which never lets secrets through.

use tracing_subscriber::EnvFilter;

/// Directives no log configuration may override: the container engine client logs request
/// and response bodies, which carry agents' secret environment, below `info`.
pub const SECRET_SAFE_DIRECTIVES: [&str; 2] = ["bollard=info", "hyper=info"];

/// The filter from `RUST_LOG` (or `default` when unset or invalid), with
/// [`SECRET_SAFE_DIRECTIVES`] added last so they win over anything the operator wrote.
pub fn env_filter(default: &str) -> EnvFilter {
    let base = std::env::var(EnvFilter::DEFAULT_ENV).unwrap_or_else(|_| default.to_owned());
    let mut filter = EnvFilter::try_new(&base).unwrap_or_else(|_| EnvFilter::new(default));
    for directive in SECRET_SAFE_DIRECTIVES {
        filter = filter.add_directive(directive.parse().expect("static directive parses"));
    }
    filter
}
