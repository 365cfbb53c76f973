//! A newcomer's whole job with `norman` alone, against a real `norman serve` process: signup (token
//! saved), models create and list, push, status, pull, login and logout; and the usual mistakes
//! (blank or padded tokens, a base URL without its version path) with the message each one gets.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use norman::Checksum;
use serde_json::Value;

/// `norman` with a private config home, the server's base URL, and no NORMAN_TOKEN.
fn norman(home: &Path, base_url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_norman"));
    cmd.env("XDG_CONFIG_HOME", home.join("config"))
        .env("HOME", home)
        .env("NORMAN_BASE_URL", base_url)
        .env_remove("NORMAN_TOKEN")
        .stdin(Stdio::null());
    cmd
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains("panicked"));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs with `input` on standard input.
fn run_with_stdin(cmd: &mut Command, input: &[u8]) -> Output {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// A failed command: non-zero, no panic, stderr mentions `what`.
fn fails_with(out: Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "expected a failure mentioning {what:?}; stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(what), "stderr should mention {what:?}: {err}");
    err
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn signup_create_push_status_pull_with_norman_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let home = dir.path();
    let norman = |args: &[&str]| {
        let mut cmd = norman(home, &serve.base_url);
        cmd.args(args);
        cmd
    };

    fails_with(norman(&["models", "list"]).output().unwrap(), "not logged in");

    // signup --save: the token goes to a 0600 file (folder 0700), not to stdout.
    let signup = json(&run(&mut norman(&["signup", "--save", "--json"])));
    let account_id = signup["account"]["id"].as_str().unwrap().to_owned();
    let token_file = home.join("config/norman/token");
    assert_eq!(signup["token_file"].as_str().unwrap(), token_file.to_str().unwrap());
    assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(token_file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let token = std::fs::read_to_string(&token_file).unwrap().trim().to_owned();
    assert!(token.len() > 16 && !signup.to_string().contains(&token));

    // models create prints the push target of each asset.
    let created = run(&mut norman(&["models", "create", "weights", "--asset", "File", "--asset", "Logo"]));
    let model_id = created.lines().next().unwrap().split_whitespace().nth(1).unwrap().to_owned();
    let target = created
        .lines()
        .find_map(|l| l.strip_prefix("asset File  "))
        .unwrap_or_else(|| panic!("no File asset line: {created}"))
        .to_owned();
    let parts: Vec<&str> = target.split('/').collect();
    assert_eq!(parts[..2], [account_id.as_str(), model_id.as_str()]);
    let asset_id = parts[2].to_owned();

    let listed = run(&mut norman(&["models", "list"]));
    assert!(
        listed.contains(&model_id) && listed.contains("weights") && listed.contains(&asset_id),
        "{listed}"
    );
    let listed = json(&run(&mut norman(&["models", "list", "--json"])));
    let models = listed.as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["id"], model_id.as_str());
    assert_eq!(models[0]["assets"].as_array().unwrap().len(), 2);

    let before = json(&run(&mut norman(&["status", "--json", &asset_id])));
    assert_eq!(before[0]["entity_id"], asset_id.as_str());
    assert_eq!(before[0]["state"], "pending");

    let content = random_bytes(3 * 1024 * 1024 + 5, 7);
    let src = dir.path().join("weights.bin");
    std::fs::write(&src, &content).unwrap();
    let sum = Checksum::of(&content).to_hex();
    let pushed = run(norman(&["push", "--asset", &target]).arg(&src));
    assert!(pushed.starts_with(&sum), "{pushed}");

    let status = run(&mut norman(&["status", &asset_id, &model_id]));
    let first = status.lines().next().unwrap();
    assert_eq!(first, format!("{asset_id}  done"), "{status}");
    assert!(status.contains("File_S3_Storage  Finished"), "{status}");
    let status = json(&run(&mut norman(&["status", "--json", &asset_id])));
    assert_eq!(status[0]["state"], "done");
    let flags = status[0]["flags"].as_array().unwrap();
    assert!(!flags.is_empty() && flags.iter().all(|f| f["flag_value"] == 3), "{status}");

    let dest = dir.path().join("pulled.bin");
    let pulled = run(norman(&["pull", "--asset", &target, "--out"]).arg(&dest));
    assert!(pulled.starts_with(&sum) && pulled.trim_end().ends_with("MB/s)"), "{pulled}");
    assert!(std::fs::read(&dest).unwrap() == content);
    // Safe pulls: an existing file is kept without --force, a directory is refused, both before a
    // byte is requested; --force replaces.
    std::fs::write(&dest, b"mine").unwrap();
    fails_with(norman(&["pull", "--asset", &target, "--out"]).arg(&dest).output().unwrap(), "pass --force");
    assert_eq!(std::fs::read(&dest).unwrap(), b"mine");
    fails_with(
        norman(&["pull", "--asset", &target, "--out"]).arg(dir.path()).output().unwrap(),
        "is a directory",
    );
    let pulled = run(norman(&["pull", "--force", "--asset", &target, "--out"]).arg(&dest));
    assert!(pulled.starts_with(&sum), "{pulled}");
    assert!(std::fs::read(&dest).unwrap() == content);
    let out = run_with_stdin(&mut norman(&["checksum", "-"]), &content);
    assert_eq!(String::from_utf8(out.stdout).unwrap(), format!("{sum}  -\n"));

    // logout forgets the token; `login ACCOUNT_ID` prints a new one for NORMAN_TOKEN.
    assert!(run(&mut norman(&["logout"])).contains("removed"));
    assert!(!token_file.exists());
    fails_with(norman(&["models", "list"]).output().unwrap(), "not logged in");
    let login = run(&mut norman(&["login", &account_id]));
    let new_token = login.trim();
    assert!(login.lines().count() == 1 && new_token.starts_with("nat_") && new_token != token, "{login}");
    let listed = run(norman(&["models", "list"]).env("NORMAN_TOKEN", new_token));
    assert!(listed.contains(&model_id), "{listed}");
}

#[test]
fn tokens_are_trimmed_blank_is_unset_and_inner_spaces_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let home = dir.path();
    let norman = |args: &[&str]| {
        let mut cmd = norman(home, &serve.base_url);
        cmd.args(args);
        cmd
    };
    let token = run(&mut norman(&["signup"])).trim().to_owned();

    // A pasted token with a newline and spaces works (trimmed).
    let padded = format!("  {token} \n");
    assert_eq!(run(norman(&["models", "list"]).env("NORMAN_TOKEN", &padded)).trim(), "no models");
    // An empty or blank NORMAN_TOKEN is unset: the saved token (none yet) is looked for.
    for blank in ["", " \n"] {
        fails_with(norman(&["models", "list"]).env("NORMAN_TOKEN", blank).output().unwrap(), "not logged in");
    }
    // A token with a space inside is refused, naming the variable, never the token.
    let err = fails_with(
        norman(&["models", "list"]).env("NORMAN_TOKEN", format!("{token} extra")).output().unwrap(),
        "NORMAN_TOKEN holds a token with a space or control character inside it",
    );
    assert!(!err.contains(&token), "{err}");

    // The saved file: trimmed too; NORMAN_TOKEN wins over it; a file others can read is refused.
    let file = home.join("config/norman/token");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, format!("{token}\n\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(run(&mut norman(&["models", "list"])).trim(), "no models");
    fails_with(norman(&["models", "list"]).env("NORMAN_TOKEN", "nat_wrong").output().unwrap(), "401");
    let out = norman(&["signup", "--save"]).env("NORMAN_TOKEN", &token).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NORMAN_TOKEN is set here and wins"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    fails_with(norman(&["models", "list"]).output().unwrap(), "chmod 600");
}

#[test]
fn a_base_url_without_its_version_path_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let root = serve.base_url.trim_end_matches('/').trim_end_matches("v0").to_owned();
    assert!(root.ends_with('/'), "{root}");
    let signup = json(&run(norman(dir.path(), &serve.base_url).args(["signup", "--json"])));
    let token = signup["access_token"].as_str().unwrap().to_owned();
    let account_id = signup["account"]["id"].as_str().unwrap();
    for base in [root.clone(), root.trim_end_matches('/').to_owned()] {
        let err = fails_with(
            norman(dir.path(), &base).args(["models", "list"]).env("NORMAN_TOKEN", &token).output().unwrap(),
            "answered HTTP 404",
        );
        assert!(err.contains(&format!("hint: the base URL {root} has no API version")), "{err}");
        assert!(err.contains(&format!("NORMAN_BASE_URL={root}v0/")), "{err}");
    }
    // A 404 under the right base URL is just a 404.
    let mut pull = norman(dir.path(), &serve.base_url);
    pull.args(["pull", "--asset", &format!("{account_id}/no-model/no-asset"), "--out"])
        .arg(dir.path().join("x"))
        .env("NORMAN_TOKEN", &token);
    let err = fails_with(pull.output().unwrap(), "404");
    assert!(!err.contains("hint"), "{err}");
}

#[test]
fn password_accounts_sign_up_and_log_in_with_the_password_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&dir.path().join("data"), &[]);
    let norman = |args: &[&str]| {
        let mut cmd = norman(dir.path(), &serve.base_url);
        cmd.args(args);
        cmd
    };
    let out = run_with_stdin(&mut norman(&["signup", "--name", "ada", "--password"]), b"correct horse\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout).unwrap().trim().starts_with("nat_"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(ada)"));

    let out =
        run_with_stdin(&mut norman(&["login", "--name", "ada", "--password", "--save"]), b"correct horse\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("token saved to"));
    assert_eq!(run(&mut norman(&["models", "list"])).trim(), "no models");

    let err = fails_with(
        run_with_stdin(&mut norman(&["login", "--name", "ada", "--password"]), b"wrong horse\n"),
        "401",
    );
    assert!(!err.contains("wrong horse"), "{err}");
    fails_with(run_with_stdin(&mut norman(&["login", "--name", "ada", "--password"]), b""), "no password");
    fails_with(norman(&["signup", "--name", "ada"]).output().unwrap(), "--password");
    fails_with(norman(&["login"]).output().unwrap(), "required");
}

#[test]
fn completions_and_checksum_of_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let norman = |args: &[&str]| {
        let mut cmd = norman(dir.path(), "http://127.0.0.1:9/v0/");
        cmd.args(args);
        cmd
    };
    for shell in ["bash", "zsh", "fish"] {
        let script = run(&mut norman(&["completions", shell]));
        for word in ["signup", "login", "models", "status", "push", "pull", "completions"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
    fails_with(norman(&["completions", "cmd.exe"]).output().unwrap(), "invalid value");

    let out = run_with_stdin(&mut norman(&["checksum", "-"]), b"abc");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "78af5f94892f3950  -\n");
    let file = dir.path().join("abc");
    std::fs::write(&file, b"abc").unwrap();
    let out = run_with_stdin(norman(&["checksum", "--json", "-"]).arg(&file), b"");
    let sums = json(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(sums[0]["checksum"], "2d06800538d394c2");
    assert_eq!(sums[0]["bytes"], 0);
    assert_eq!(sums[1]["checksum"], "78af5f94892f3950");
    assert_eq!(sums[1]["file"], file.to_str().unwrap());
}

/// A pull interrupted by SIGINT (here: from a server that stalls mid-file) exits non-zero and leaves
/// neither the file nor its temporary part behind.
#[test]
fn an_interrupted_pull_leaves_nothing_behind() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let Ok((conn, _)) = listener.accept() else { return };
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) && line != "\r\n" {
            line.clear();
        }
        let mut conn = conn;
        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n");
        let _ = conn.write_all(&vec![7u8; 100_000]);
        std::thread::sleep(std::time::Duration::from_secs(20)); // stalls with the connection open
    });
    let dest = dir.path().join("pulled.bin");
    let child = norman(dir.path(), &format!("http://127.0.0.1:{port}/v0/"))
        .env("NORMAN_TOKEN", "a-token-for-a-server-that-stalls")
        .args(["pull", "--asset", "a/m/x", "--out"])
        .arg(&dest)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let part_exists = || {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !part_exists() {
        assert!(std::time::Instant::now() < deadline, "the pull never started writing");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    fails_with(out, "interrupted (SIGINT)");
    assert!(!part_exists() && !dest.exists(), "something was left behind");
}
