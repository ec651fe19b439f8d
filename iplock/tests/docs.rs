//! The generated man pages and completions cover every subcommand that
//! `--help` lists, at every depth, and every subcommand's `--help` shows an
//! example. Needs no root: nothing here touches the kernel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_iplock");

fn iplock(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run iplock {args:?}: {e}"));
    assert!(
        out.status.success(),
        "iplock {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// The subcommand names `--help` of `path` (e.g. `["ban"]`) lists, without
/// clap's own `help`.
fn subcommands(path: &[&str]) -> Vec<String> {
    let mut args = path.to_vec();
    args.push("--help");
    iplock(&args)
        .lines()
        .skip_while(|l| *l != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(String::from)
        .collect()
}

/// Every visible subcommand at any depth, as a path of names.
fn all_subcommands() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut todo: Vec<Vec<String>> = vec![vec![]];
    while let Some(path) = todo.pop() {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        for name in subcommands(&p) {
            let mut sub = path.clone();
            sub.push(name);
            todo.push(sub.clone());
            found.push(sub);
        }
    }
    found
}

struct OutDir(PathBuf);

impl Drop for OutDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generates into a directory of its own: tests run in parallel.
fn generate() -> OutDir {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = OutDir(std::env::temp_dir().join(format!("iplock-docs-{}-{n}", std::process::id())));
    iplock(&["generate-docs", "--out", dir.0.to_str().unwrap()]);
    dir
}

/// A man page with roff's escaped hyphens read as plain ones.
fn page(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .replace("\\-", "-")
}

#[test]
fn help_lists_the_subcommands_the_issue_asks_for() {
    let top = subcommands(&[]);
    for name in [
        "load", "status", "unload", "run", "reload", "allow", "ban", "knock", "calc",
    ] {
        assert!(top.iter().any(|n| n == name), "{name} missing in {top:?}");
    }
    assert!(
        !top.iter().any(|n| n == "generate-docs"),
        "generate-docs is meant to be hidden: {top:?}"
    );
}

#[test]
fn man_pages_cover_every_subcommand() {
    let dir = generate();
    let main = page(&dir.0, "iplock.8");
    assert!(
        main.contains(".TH iplock 8"),
        "not a section 8 page: {main}"
    );
    for path in all_subcommands() {
        let name = format!("iplock-{}", path.join("-"));
        let parent = match &path[..path.len() - 1] {
            [] => "iplock".to_string(),
            p => format!("iplock-{}", p.join("-")),
        };
        let parent_page = page(&dir.0, &format!("{parent}.8"));
        assert!(
            parent_page.contains(&format!("{name}(8)")),
            "{parent}.8 does not mention {name}(8)"
        );
        let own = page(&dir.0, &format!("{name}.8"));
        assert!(
            own.contains(&format!("iplock {}", path.join(" "))),
            "{name}.8 has no synopsis of `iplock {}`",
            path.join(" ")
        );
        assert!(own.contains(".SH EXAMPLES"), "{name}.8 has no examples");
        assert!(
            own.contains(&format!("{parent}(8)")),
            "{name}.8 does not point to {parent}(8)"
        );
    }
    assert!(
        !dir.0.join("iplock-generate-docs.8").exists(),
        "the hidden generate-docs got a page"
    );
}

#[test]
fn completions_cover_every_subcommand() {
    let dir = generate();
    for file in ["iplock.bash", "_iplock", "iplock.fish"] {
        let text = page(&dir.0, file);
        for path in all_subcommands() {
            let name = path.last().unwrap();
            assert!(text.contains(name.as_str()), "{file} lacks {name}");
        }
        assert!(
            !text.contains("generate-docs") && !text.contains("generate_docs"),
            "{file} offers the hidden generate-docs"
        );
    }
}

#[test]
fn every_subcommand_help_has_an_example() {
    let mut paths = all_subcommands();
    paths.push(vec!["generate-docs".to_string()]);
    for path in paths {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let help = iplock(&args);
        let example = help
            .split_once("\nExample:\n")
            .map(|(_, rest)| rest.lines().next().unwrap_or(""));
        assert!(
            example.is_some_and(|l| l.contains("iplock ")),
            "`iplock {}` has no example: {help}",
            args.join(" ")
        );
    }
}
