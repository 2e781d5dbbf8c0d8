//! The `encrypted-attr` binary.

fn main() -> std::process::ExitCode {
    encrypted_attr_server::cli::main()
}
