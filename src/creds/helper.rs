//! Docker credential helpers: `docker-credential-<name> get`, server URL on stdin, JSON on stdout.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::Credential;
use crate::error::{Error, Result};

/// How long a helper may take (it may be waiting for a keychain or a pinentry prompt).
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// What `get` prints on success.
#[derive(Deserialize)]
struct HelperOutput {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// A helper to run: its name (`ecr-login` for `docker-credential-ecr-login`) and where to look.
pub(crate) struct Helper<'a> {
    pub name: &'a str,
    /// Directory holding the helper; `None` searches `PATH`.
    pub dir: Option<&'a Path>,
}

impl Helper<'_> {
    pub fn program(&self) -> String {
        format!("docker-credential-{}", self.name)
    }

    fn path(&self) -> PathBuf {
        match self.dir {
            Some(d) => d.join(self.program()),
            None => PathBuf::from(self.program()),
        }
    }

    fn error(&self, server: &str, what: impl std::fmt::Display) -> Error {
        Error::Credentials {
            reason: format!("credential helper {} for {server}: {what}", self.program()),
        }
    }

    /// Runs `get` for `server`. `Ok(None)` when the helper says it has no credentials.
    pub fn get(&self, server: &str) -> Result<Option<Credential>> {
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.is_empty() || !self.name.chars().all(valid) {
            return Err(self.error(server, "invalid helper name"));
        }
        let mut child = self.spawn(server)?;
        if let Some(mut stdin) = child.stdin.take() {
            // A helper that exits without reading stdin is judged by its exit status below.
            let _ = stdin.write_all(server.as_bytes());
        }
        let (status, out, err) = wait_with_timeout(child, HELPER_TIMEOUT)
            .map_err(|e| self.error(server, e))?
            .ok_or_else(|| self.error(server, format!("no answer within {HELPER_TIMEOUT:?}")))?;
        tracing::debug!(helper = %self.program(), server, %status, "credential helper ran");
        if !status.success() {
            let all = format!("{out}\n{err}");
            if all.to_ascii_lowercase().contains("credentials not found") {
                return Ok(None);
            }
            let said = describe_output(if err.trim().is_empty() { &out } else { &err });
            return Err(self.error(server, format!("{status}{said}")));
        }
        let parsed: HelperOutput = serde_json::from_str(out.trim()).map_err(|e| {
            self.error(
                server,
                format!(
                    "output is not the expected {{\"Username\",\"Secret\"}} JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Ok(to_credential(parsed))
    }

    fn spawn(&self, server: &str) -> Result<Child> {
        let mut attempts = 0;
        loop {
            let res = Command::new(self.path())
                .arg("get")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn();
            match res {
                Ok(child) => return Ok(child),
                // ETXTBSY: the helper was just written and another thread's fork still holds it
                // open for writing; it goes away within moments.
                Err(e) if e.raw_os_error() == Some(26) && attempts < 20 => {
                    attempts += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let place = match self.dir {
                        Some(d) => format!("in {}", d.display()),
                        None => "on PATH".to_string(),
                    };
                    return Err(self.error(server, format!("not found {place}")));
                }
                Err(e) => return Err(self.error(server, format!("cannot run: {e}"))),
            }
        }
    }
}

fn to_credential(out: HelperOutput) -> Option<Credential> {
    if out.username.is_empty() && out.secret.is_empty() {
        return None;
    }
    if out.username == super::IDENTITY_TOKEN_USERNAME {
        return Some(Credential::identity_token(out.secret));
    }
    Some(Credential::password(out.username, out.secret))
}

/// The helper's diagnostic, unless it could be carrying a credential.
fn describe_output(out: &str) -> String {
    let line = out.trim().lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return String::new();
    }
    if line.contains('{') || line.to_ascii_lowercase().contains("secret") {
        return ": (output withheld: it may contain a secret)".to_string();
    }
    let short: String = line.chars().take(200).collect();
    format!(": {short}")
}

/// What a finished helper said: exit status, stdout, stderr.
type Finished = (ExitStatus, String, String);

/// Waits for the child, collecting stdout and stderr; `None` (child killed) on timeout.
fn wait_with_timeout(mut child: Child, timeout: Duration) -> std::io::Result<Option<Finished>> {
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|s| Box::new(s) as _));
    let err = drain(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = |h: std::thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(Some((status, text(out), text(err))))
}
