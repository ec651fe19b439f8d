//! Judging a finished command by its exit status and output, with failure
//! messages that show everything it printed.

use std::process::Output;

/// Exit status, stdout and stderr, for a failure message.
pub fn describe(out: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics with `what` and the output unless the command exited with `code`.
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exited {}",
        describe(out)
    );
}

/// The one non-empty line on stderr, which the contract wants for exit
/// status 2 (one sentence); panics otherwise.
pub fn one_stderr_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines.len() == 1 && !lines[0].trim().is_empty(),
        "want one line on stderr, got {stderr:?}"
    );
    lines[0].to_string()
}
