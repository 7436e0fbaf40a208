//! HTTPS to a real docker-registry serving a test certificate: refused by default, trusted with
//! `ca_file`, accepted blindly with `tls_verify = false`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::registry_common::*;
use ferry::error::Error;
use ferry::store::registry::{RegistryClient, RegistryOptions};
use ferry::store::Store;

/// A docker-registry with `http.tls`; killed on drop. `dir/cert.pem` is its certificate.
pub(crate) struct TlsRegistry {
    child: Child,
    pub addr: String,
    pub dir: tempfile::TempDir,
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tls_registry() -> TlsRegistry {
    start_tls_registry_with(None)
}

/// A TLS registry; with `client_ca` (PEM), one that demands client certificates signed by it.
pub(crate) fn start_tls_registry_with(client_ca: Option<&str>) -> TlsRegistry {
    let bin =
        crate::support::registry::which("docker-registry").expect("docker-registry not installed");
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let yaml = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n  tls:\n    certificate: {}\n    key: {}\n",
        dir.path().join("storage").display(),
        cert.display(),
        key.display()
    );
    let mut yaml = yaml;
    if let Some(pem) = client_ca {
        let path = dir.path().join("client-ca.pem");
        std::fs::write(&path, pem).unwrap();
        yaml.push_str(&format!("    clientcas:\n      - {}\n", path.display()));
    }
    std::fs::write(dir.path().join("config.yml"), yaml).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let reg = TlsRegistry { child, addr, dir };
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&reg.addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "TLS registry did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reg
}

fn https(reg: &TlsRegistry, tweak: impl FnOnce(&mut RegistryOptions)) -> RegistryClient {
    let mut o = options(None);
    o.plain_http = Some(false);
    tweak(&mut o);
    RegistryClient::new(&reg.addr, o).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trust_is_configurable() {
    let reg = start_tls_registry();

    let strict = https(&reg, |_| {});
    assert_eq!(strict.scheme(), "https");
    let e = strict.ping().await.unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    let trusted = https(&reg, |o| o.ca_file = Some(reg.dir.path().join("cert.pem")));
    trusted.ping().await.unwrap();
    let s = store(&trusted, "tls/app");
    let blob = MemBlob::new(bytes_of(4, 10_000));
    let desc = blob.descriptor("application/octet-stream");
    s.put_blob(&desc, &blob).await.unwrap();
    assert_eq!(
        read_all(s.open_blob(&desc, 0).await.unwrap())
            .await
            .unwrap(),
        blob.bytes
    );

    let blind = https(&reg, |o| o.tls_verify = false);
    blind.ping().await.unwrap();
    assert!(store(&blind, "tls/app").has_blob(&desc).await.unwrap());
}

/// The binary against a TLS registry on 127.0.0.1: `--dest-tls`/`--tls` choose HTTPS where
/// loopback would otherwise mean plain HTTP.
#[test]
fn explicit_tls_choices_reach_a_loopback_tls_registry() {
    use crate::support::fixtures::{self, ImageSpec};
    let reg = start_tls_registry();
    let ca = reg.dir.path().join("cert.pem");
    let layout = tempfile::tempdir().unwrap();
    fixtures::write_layout(layout.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", layout.path().display());
    let dst = format!("{}/tls/app:v1", reg.addr);
    let ferry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap()
    };
    let ca = ca.to_str().unwrap();
    let o = ferry(&["copy", "-q", "--dest-tls", "--ca-file", ca, &src, &dst]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ferry(&["digest", "--tls", "--ca-file", ca, &dst]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ferry(&["copy", "--dest-tls", "--dest-plain-http", &src, &dst]);
    assert_eq!(o.status.code(), Some(2), "the two choices conflict");
}

/// Without a choice, a loopback registry is tried over HTTPS first (as docker does for
/// insecure registries): a TLS registry is reached with only `--ca-file`, an untrusted
/// certificate is reported as such (not an HTTP 400 from plain HTTP to a TLS port), and a plain
/// registry is still reached over HTTP.
#[test]
fn loopback_registries_are_tried_over_https_first_then_plain_http() {
    use crate::support::fixtures::{self, ImageSpec};
    let reg = start_tls_registry();
    let plain = crate::support::registry::Registry::start();
    let ca = reg.dir.path().join("cert.pem");
    let ca = ca.to_str().unwrap();
    let layout = tempfile::tempdir().unwrap();
    fixtures::write_layout(layout.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", layout.path().display());
    let ferry = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("DOCKER_CONFIG", "/nonexistent")
            .output()
            .unwrap()
    };
    let tls_dst = format!("{}/tls/app:v1", reg.addr);
    let o = ferry(&["copy", "-q", "--ca-file", ca, &src, &tls_dst]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ferry(&["digest", "--ca-file", ca, &tls_dst]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");
    // Untrusted: the certificate is the error, not plain HTTP's 400.
    let o = ferry(&["digest", &tls_dst]);
    let err = String::from_utf8_lossy(&o.stderr).to_lowercase();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("certificate"), "{err}");
    assert!(!err.contains("http 400"), "{err}");
    // A plain loopback registry: HTTPS fails, plain HTTP is used, same image.
    let plain_dst = format!("{}/plain/app:v1", plain.addr);
    let o = ferry(&["copy", "-q", &tls_dst, &plain_dst, "--src-tls-verify=false"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = ferry(&["digest", &plain_dst]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), digest);
    // An explicit --tls to the plain registry has no fallback.
    let o = ferry(&["digest", "--tls", &plain_dst]);
    assert_eq!(o.status.code(), Some(1));
}
