//! Accounts and the session token: `norman signup`, `norman login`, `norman logout`, and the token
//! every other command sends: NORMAN_TOKEN when it is set and not blank, else the per-user file
//! `--save` wrote ($XDG_CONFIG_HOME/norman/token, else ~/.config/norman/token, mode 0600).
//!
//! A token is one word: surrounding spaces and newlines (a pasted token, `echo` into a file) are
//! trimmed, and one with a space or control character inside is refused with a message naming where
//! it came from, never the token itself.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use norman::http::HttpClient;
use norman::objects::{
    AccountIdPasswordLoginRequest, ApiKeyLoginRequest, EmailPasswordLoginRequest, LoginResponse,
    NamePasswordLoginRequest,
};
use norman::{AppConfig, Sensitive};
use serde_json::json;

use crate::{print_line, runtime, CliResult};

/// Longest secret read from standard input (a password or an API key).
const SECRET_LIMIT: u64 = 4096;

#[derive(clap::Args)]
pub struct SignupArgs {
    /// Name of a password account (the password is read from standard input, without echo on a
    /// terminal); without it, an account without credentials that logs in by its id.
    #[arg(long, requires = "password")]
    name: Option<String>,
    /// Read the new account's password from standard input (with --name).
    #[arg(long, requires = "name")]
    password: bool,
    #[command(flatten)]
    out: SessionOutput,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("who").required(true).args(["account_id", "name", "email"]))]
pub struct LoginArgs {
    /// The account to log in to (alone: an account without credentials).
    account_id: Option<String>,
    /// Log in by account name (with --password).
    #[arg(long, requires = "password")]
    name: Option<String>,
    /// Log in by email (with --password).
    #[arg(long, requires = "password")]
    email: Option<String>,
    /// Read the password from standard input (without echo on a terminal).
    #[arg(long, conflicts_with = "api_key")]
    password: bool,
    /// Read an API key of ACCOUNT_ID from standard input.
    #[arg(long, requires = "account_id")]
    api_key: bool,
    #[command(flatten)]
    out: SessionOutput,
}

/// What signup and login do with the token.
#[derive(clap::Args)]
struct SessionOutput {
    /// Store the token in the per-user file later commands read (mode 0600) instead of printing it.
    #[arg(long)]
    save: bool,
    /// Print the account and the token (or the file it was saved to) as one JSON object.
    #[arg(long)]
    json: bool,
}

/// Where `--save` keeps the token: `$XDG_CONFIG_HOME/norman/token`, else `~/.config/norman/token`.
pub fn token_path() -> CliResult<PathBuf> {
    let config_home = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        // The XDG spec says to ignore a relative value.
        Some(dir) if dir.is_absolute() => dir,
        _ => match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => return Err("neither XDG_CONFIG_HOME nor HOME is set: no place for the token file".into()),
        },
    };
    Ok(config_home.join("norman").join("token"))
}

/// `raw` trimmed; `None` when blank; an error naming `source` when a space or control character is
/// left inside (the token is never printed).
fn clean_token(raw: &str, source: &str) -> CliResult<Option<String>> {
    let token = raw.trim();
    if token.is_empty() {
        return Ok(None);
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{source} holds a token with a space or control character inside it; a token is one word \
             (log in again, or set NORMAN_TOKEN to the token alone)"
        ));
    }
    Ok(Some(token.to_owned()))
}

/// The token to send: NORMAN_TOKEN (an empty or blank one counts as unset), else the saved file.
pub fn token() -> CliResult<String> {
    match std::env::var("NORMAN_TOKEN") {
        Ok(raw) => {
            if let Some(token) = clean_token(&raw, "NORMAN_TOKEN")? {
                return Ok(token);
            }
        }
        Err(std::env::VarError::NotUnicode(_)) => return Err("NORMAN_TOKEN is not valid UTF-8".into()),
        Err(std::env::VarError::NotPresent) => {}
    }
    let path = token_path()?;
    let raw = match read_token_file(&path) {
        Ok(raw) => raw,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "not logged in: no NORMAN_TOKEN and no {} (run `norman signup --save` or \
                 `norman login ACCOUNT_ID --save`, or export NORMAN_TOKEN)",
                path.display()
            ))
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    clean_token(&raw, &path.display().to_string())?
        .ok_or_else(|| format!("{} is empty: log in again with --save", path.display()))
}

/// Reads the token file, refusing one that others can read (as ssh does with private keys).
fn read_token_file(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let file = std::fs::File::open(path)?;
    let mode = file.metadata()?.mode();
    if mode & 0o077 != 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("readable by other users (mode {:o}); run `chmod 600` on it", mode & 0o777),
        ));
    }
    let mut raw = String::new();
    file.take(SECRET_LIMIT).read_to_string(&mut raw)?;
    Ok(raw)
}

/// Writes the token with mode 0600 (its folder 0700) through a temporary file, so that a reader
/// never sees half a token and an older file with looser permissions is replaced, not reused.
fn save_token(token: &str) -> CliResult<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let path = token_path()?;
    let dir = path.parent().ok_or("the token path has no folder")?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".token.{}.tmp", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(token.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(path)
}

/// The configuration from NORMAN_* and a client without a token.
pub fn anonymous_client() -> CliResult<(AppConfig, HttpClient)> {
    let config = AppConfig::from_env().map_err(|e| e.to_string())?;
    let http = HttpClient::new(&config).map_err(|e| e.to_string())?;
    Ok((config, http))
}

/// The configured client sending the user's token ([`token`]).
pub fn client_from_env() -> CliResult<(AppConfig, HttpClient)> {
    let token = token()?;
    let (config, http) = anonymous_client()?;
    Ok((config, http.with_token(token)))
}

/// A hint for a failure that usually means a misconfiguration: a 404 from a base URL whose path has
/// no API version (`http://host:8080/` instead of `http://host:8080/v0/`).
pub fn hint(message: &str) -> Option<String> {
    if !message.contains("answered HTTP 404") {
        return None;
    }
    let base = AppConfig::from_env().ok()?.base_url;
    let url = reqwest::Url::parse(&base).ok()?;
    let versioned = url
        .path_segments()?
        .any(|s| s.len() > 1 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit()));
    if versioned {
        return None;
    }
    let mut suggested = url.clone();
    suggested.set_path(&format!("{}/v0/", url.path().trim_end_matches('/')));
    Some(format!(
        "the base URL {url} has no API version in its path; the routes live under one, e.g. \
         NORMAN_BASE_URL={suggested}"
    ))
}

/// Reads one secret line from standard input, prompting without echo on a terminal.
fn read_secret(what: &str) -> CliResult<Sensitive<String>> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    let read = if stdin.is_terminal() {
        eprint!("{what}: ");
        let _ = std::io::stderr().flush();
        let echo = EchoOff::new();
        let read = stdin.lock().take(SECRET_LIMIT).read_line(&mut line);
        drop(echo);
        eprintln!();
        read
    } else {
        stdin.lock().take(SECRET_LIMIT).read_line(&mut line)
    };
    line.truncate(line.trim_end_matches(['\n', '\r']).len());
    let secret = Sensitive::new(line);
    read.map_err(|e| format!("reading the {what} from standard input: {e}"))?;
    if secret.expose().is_empty() {
        return Err(format!("no {what} on standard input"));
    }
    Ok(secret)
}

/// Terminal echo off on standard input until dropped.
struct EchoOff(Option<libc::termios>);

impl EchoOff {
    fn new() -> Self {
        // SAFETY: tcgetattr/tcsetattr on fd 0 with a termios we own; failure leaves echo as it was.
        unsafe {
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return EchoOff(None);
            }
            let mut quiet = saved;
            quiet.c_lflag &= !libc::ECHO;
            if libc::tcsetattr(0, libc::TCSANOW, &quiet) != 0 {
                return EchoOff(None);
            }
            EchoOff(Some(saved))
        }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            // SAFETY: restores the attributes read in `new`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, &saved) };
        }
    }
}

pub fn signup(args: SignupArgs) -> CliResult {
    let (_, http) = anonymous_client()?;
    let password = if args.password { Some(read_secret("password")?) } else { None };
    let login = runtime()?.block_on(async {
        let auth = http.authenticate();
        match (&args.name, &password) {
            (Some(name), Some(password)) => {
                let account = auth.signup_with_password(name, password).await?;
                let request = AccountIdPasswordLoginRequest::new(account.id, password.expose().clone());
                auth.login_password_account_id(&request).await
            }
            _ => auth.signup_default().await,
        }
    });
    finish_session(login.map_err(|e| e.to_string())?, &args.out, "signed up")
}

pub fn login(args: LoginArgs) -> CliResult {
    let (_, http) = anonymous_client()?;
    let password = if args.password { Some(read_secret("password")?) } else { None };
    let api_key = if args.api_key { Some(read_secret("API key")?) } else { None };
    let login = runtime()?.block_on(async {
        let auth = http.authenticate();
        match (&args.account_id, &args.name, &args.email, password, api_key) {
            (Some(id), _, _, None, Some(key)) => auth.login_with_key(&ApiKeyLoginRequest::new(id, key)).await,
            (Some(id), _, _, Some(pw), None) => {
                auth.login_password_account_id(&AccountIdPasswordLoginRequest::new(id, pw)).await
            }
            (_, Some(name), _, Some(pw), None) => {
                auth.login_password_name(&NamePasswordLoginRequest::new(name, pw)).await
            }
            (_, _, Some(email), Some(pw), None) => {
                auth.login_password_email(&EmailPasswordLoginRequest::new(email, pw)).await
            }
            (Some(id), None, None, None, None) => auth.login_default(id).await,
            _ => Err(norman::Error::InvalidArgument(
                "give ACCOUNT_ID alone, ACCOUNT_ID with --password or --api-key, or --name or --email \
                 with --password"
                    .into(),
            )),
        }
    });
    finish_session(login.map_err(|e| e.to_string())?, &args.out, "logged in")
}

/// Prints or saves the token of a login answer.
fn finish_session(login: LoginResponse, out: &SessionOutput, what: &str) -> CliResult {
    let Some(token) = login.access_token else {
        return Err("the backend answered without an access token".into());
    };
    let token = clean_token(token.expose(), "the backend's answer")?
        .ok_or("the backend answered with an empty access token")?;
    let account = login.account.unwrap_or_default();
    if out.save {
        let path = save_token(&token)?;
        if std::env::var("NORMAN_TOKEN").is_ok_and(|t| !t.trim().is_empty()) {
            let _ =
                writeln!(std::io::stderr(), "norman: NORMAN_TOKEN is set here and wins over the saved token");
        }
        if out.json {
            let line = json!({ "account": account, "token_file": path });
            return print_line(&line.to_string());
        }
        return print_line(&format!(
            "{what}: account {} ({}); token saved to {}",
            account.id,
            account.name,
            path.display()
        ));
    }
    if out.json {
        return print_line(&json!({ "account": account, "access_token": token }).to_string());
    }
    // The token alone on stdout (`export NORMAN_TOKEN=$(norman login ID)`); the rest on stderr.
    let _ = writeln!(std::io::stderr(), "norman: {what}: account {} ({})", account.id, account.name);
    print_line(&token)
}

/// `norman logout`: removes the saved token.
pub fn logout() -> CliResult {
    let path = token_path()?;
    match std::fs::remove_file(&path) {
        Ok(()) => print_line(&format!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            print_line(&format!("no saved token ({} does not exist)", path.display()))
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
    }?;
    if std::env::var("NORMAN_TOKEN").is_ok_and(|t| !t.trim().is_empty()) {
        let _ = writeln!(std::io::stderr(), "norman: NORMAN_TOKEN is still set in this environment");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::clean_token;

    #[test]
    fn tokens_are_trimmed_and_must_be_one_word() {
        assert_eq!(clean_token("nat_abc\n", "x").unwrap().as_deref(), Some("nat_abc"));
        assert_eq!(clean_token("  nat_abc \r\n", "x").unwrap().as_deref(), Some("nat_abc"));
        assert_eq!(clean_token(" \n", "x").unwrap(), None);
        assert_eq!(clean_token("", "x").unwrap(), None);
        let err = clean_token("nat_a bc", "NORMAN_TOKEN").unwrap_err();
        assert!(err.contains("NORMAN_TOKEN") && !err.contains("nat_a"), "{err}");
        assert!(clean_token("nat\u{7}x", "x").is_err());
    }
}
