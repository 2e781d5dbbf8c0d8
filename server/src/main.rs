//! The `encrypted-attr` binary: companion transit server and admin commands.
//!
//! Not implemented yet; it only reports so.

fn main() -> std::process::ExitCode {
    eprintln!("encrypted-attr: the server and admin commands are not implemented yet");
    std::process::ExitCode::from(2)
}
