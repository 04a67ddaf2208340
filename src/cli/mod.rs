//! The subcommands' library side (src/main.rs parses their flags): `relieve`, which asks a
//! running exporter to act. (`diagnose URL` is src/targets/triage.rs: it observes Redis itself.)

pub mod relieve;
