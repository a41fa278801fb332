//! The README's shell examples can be pasted: no `<placeholder>` stands where a value must
//! go, and every file an example uploads is in the repository (`docs/examples/`) and is
//! accepted by a real server's upload route.

use crate::common;

use std::path::{Path, PathBuf};

use common::TestServer;
use reqwest::StatusCode;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of the README's `sh` blocks, with their line numbers, trailing comments cut.
fn shell_lines() -> Vec<(usize, String)> {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut inside = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            inside = !inside && line.trim() == "```sh";
            continue;
        }
        if inside {
            let code = match line.find(" # ") {
                Some(at) => &line[..at],
                None if line.trim_start().starts_with('#') => "",
                None => line,
            };
            out.push((i + 1, code.to_owned()));
        }
    }
    assert!(out.len() > 50, "the README's sh blocks were not found");
    out
}

/// `<...>` spans that look like placeholders: a letter after `<`, no shell redirection.
fn placeholders(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) if after.starts_with(|c: char| c.is_alphabetic()) => {
                found.push(format!("<{}>", &after[..end]));
                rest = &after[end + 1..];
            }
            _ => rest = after,
        }
    }
    found
}

/// The files `curl -F name=@PATH` lines upload.
fn uploaded_files() -> Vec<(usize, PathBuf)> {
    shell_lines()
        .into_iter()
        .flat_map(|(n, code)| {
            code.split_whitespace()
                .filter_map(|word| word.split_once("=@").map(|(_, p)| p.trim_matches('"').to_owned()))
                .map(|p| (n, root().join(p)))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn no_example_holds_a_placeholder() {
    let bad: Vec<String> = shell_lines()
        .into_iter()
        .flat_map(|(n, code)| {
            placeholders(&code)
                .into_iter()
                .map(move |p| format!("line {n}: {p}"))
        })
        .collect();
    assert!(bad.is_empty(), "README examples with placeholders: {bad:#?}");
}

#[actix_web::test]
async fn the_files_the_examples_upload_exist_and_are_accepted() {
    let files = uploaded_files();
    assert!(files.len() >= 4, "{files:?}");
    let (server, _dir) = TestServer::start().await;
    let alice = server.register("alice").await;
    for (line, path) in files {
        assert!(
            path.starts_with(root().join("docs/examples")),
            "line {line}: {} is not in docs/examples",
            path.display()
        );
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("line {line}: {}: {e}", path.display()));
        let name = Path::new(&path)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let form = reqwest::multipart::Form::new()
            .part("file", reqwest::multipart::Part::bytes(bytes).file_name(name));
        let resp = server
            .http
            .post(server.url("/api/chat/uploadStreamSingleToServerDiy/examples"))
            .header("token", &alice.token)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "line {line}: {}: {body}", path.display());
    }
    server.stop().await;
}
