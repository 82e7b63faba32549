//! The `keygate` binary; the command line itself lives in `keygate::cli`.

fn main() -> std::process::ExitCode {
    keygate::cli::main()
}
