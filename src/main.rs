use std::process::ExitCode;

fn main() -> ExitCode {
    match gatescope::commands::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
