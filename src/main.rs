use std::process::ExitCode;

fn main() -> ExitCode {
    tfrollback::main()
}
