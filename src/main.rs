//! The `cfxm` binary: parse arguments, run one command, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    // reqwest and russh are built without a default TLS provider (ring keeps builds fast);
    // install it before anything opens a connection. An `Err` means one is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    cfxm::cli::main()
}
