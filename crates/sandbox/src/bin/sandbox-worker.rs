//! A sandbox worker process (`sandbox::worker::serve`), for the sandbox's own tests; `gridmint
//! sandbox-worker` is the one providers run.

fn main() -> std::process::ExitCode {
    match sandbox::worker::serve() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbox-worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
