//! Starts the real `docker-registry` (CNCF distribution 2.8) as a child process on loopback.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry; stopped (killed) and its storage removed on drop.
pub struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`
    pub addr: String,
    pub dir: tempfile::TempDir,
}

/// Extra configuration for a registry: an `auth:` section, for example.
#[derive(Default, Clone)]
pub struct RegistryConfig {
    /// YAML placed under `auth:` (indented by the caller with two spaces per level below `auth:`).
    pub auth_yaml: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// A plain registry without auth.
    pub fn start() -> Registry {
        Self::start_with(RegistryConfig::default())
    }

    pub fn start_with(cfg: RegistryConfig) -> Registry {
        hermetic();
        let bin = which("docker-registry").expect(
            "docker-registry not found: install it with `apt-get install -y docker-registry` (see README)",
        );
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            let storage = dir.path().join("storage");
            std::fs::create_dir_all(&storage).unwrap();
            let mut yaml = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                storage.display()
            );
            if let Some(auth) = &cfg.auth_yaml {
                yaml.push_str("auth:\n");
                yaml.push_str(auth);
            }
            std::fs::write(&config, yaml).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("spawn docker-registry");
            let mut reg = Registry { child, addr, dir };
            if reg.wait_ready(Duration::from_secs(15)) {
                return reg;
            }
            // Port raced with someone else or startup failed: try again on another port.
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self, timeout: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The registry's combined log, including its access log (one line per request).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Storage root on disk.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// `127.0.0.1:PORT/repo[:tag]`
    pub fn image(&self, repo_tag: &str) -> String {
        format!("{}/{}", self.addr, repo_tag)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| Path::new(p).is_file())
    })
}

/// Makes the `ferry` processes this test binary starts ignore the persistent blob-location
/// cache (`FERRY_NO_CACHE=1`): tests start registries on ephemeral ports, and a location an
/// earlier test recorded for a port that a later test's registry reuses would turn a counted
/// upload into a (refused) mount attempt. The tests of the cache itself opt back in with their
/// own `FERRY_CACHE_DIR`. Called when any test server starts, so before a `ferry` child runs.
pub fn hermetic() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::env::set_var("FERRY_NO_CACHE", "1"));
}
