//! The `encrypted-attr` binary.

/// mimalloc instead of the system allocator: a batch request allocates a few small
/// buffers per item, and with glibc's allocator that was about 15 % of the
/// server's CPU; mimalloc cut request CPU by 13–15 % (`BENCHMARKS.md`). Secrets are
/// wiped before they are freed either way.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    encrypted_attr_server::cli::main()
}
