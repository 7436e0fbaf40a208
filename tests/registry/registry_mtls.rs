//! Mutual TLS against a real docker-registry with `http.tls.clientcas`: the client
//! certificate from `--dest-cert-file/--dest-key-file` (`--cert-file/--key-file` for one-registry
//! commands) or from docker's `certs.d/HOST/{ca.crt,client.cert,client.key}`; a missing or
//! refused client certificate, or an unusable file, gives an error that says so.

use std::path::Path;
use std::process::{Command, Output};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

use super::registry_tls::start_tls_registry_with;
use crate::support::fixtures::{self, ImageSpec};

/// A CA, and a client certificate it signed: (CA PEM, client cert PEM, client key PEM).
fn client_pki(name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(vec![]).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} CA"));
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut client = CertificateParams::new(vec![]).unwrap();
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, name.to_string());
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client = client.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), client.pem(), key.serialize_pem())
}

fn ferry(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("FERRY_CERTS_DIR")
        .output()
        .unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn client_certificates_from_flags_and_certs_d_reach_a_registry_that_demands_them() {
    let (ca, cert, key) = client_pki("ferry-test");
    let reg = start_tls_registry_with(Some(&ca));
    let server_ca = reg.dir.path().join("cert.pem");
    let server_ca = server_ca.to_str().unwrap();
    let files = tempfile::tempdir().unwrap();
    let cert_file = write(files.path(), "client.pem", &cert);
    let key_file = write(files.path(), "client-key.pem", &key);
    let layout = tempfile::tempdir().unwrap();
    fixtures::write_layout(layout.path(), "v1", &ImageSpec::oci());
    let src = format!("oci:{}:v1", layout.path().display());
    let dst = format!("{}/mtls/app:v1", reg.addr);
    let no_certs_d = files.path().join("no-certs.d");
    let no_certs_d = no_certs_d.to_str().unwrap();

    // No client certificate: refused, and the error says what is missing.
    let o = ferry(&[
        "copy",
        "-q",
        "--certs-dir",
        no_certs_d,
        "--ca-file",
        server_ca,
        &src,
        &dst,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("requires a TLS client certificate and none was sent"),
        "{}",
        stderr(&o)
    );

    // A certificate from another CA: refused, said so.
    let (_, other_cert, other_key) = client_pki("stranger");
    let other_cert = write(files.path(), "other.pem", &other_cert);
    let other_key = write(files.path(), "other-key.pem", &other_key);
    let o = ferry(&[
        "copy",
        "-q",
        "--certs-dir",
        no_certs_d,
        "--ca-file",
        server_ca,
        "--dest-cert-file",
        &other_cert,
        "--dest-key-file",
        &other_key,
        &src,
        &dst,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused the TLS client certificate"),
        "{}",
        stderr(&o)
    );

    // The right one, per side.
    let o = ferry(&[
        "copy",
        "-q",
        "--certs-dir",
        no_certs_d,
        "--ca-file",
        server_ca,
        "--dest-cert-file",
        &cert_file,
        "--dest-key-file",
        &key_file,
        &src,
        &dst,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = ferry(&[
        "digest",
        "--certs-dir",
        no_certs_d,
        "--ca-file",
        server_ca,
        "--cert-file",
        &cert_file,
        "--key-file",
        &key_file,
        &dst,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let digest = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(digest.starts_with("sha256:"), "{digest}");

    // docker's certs.d: the server CA and the client pair, found by host:port, nothing else.
    let certs_d = files.path().join("certs.d");
    let host_dir = certs_d.join(&reg.addr);
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::copy(reg.dir.path().join("cert.pem"), host_dir.join("ca.crt")).unwrap();
    write(&host_dir, "client.cert", &cert);
    write(&host_dir, "client.key", &key);
    let certs_d = certs_d.to_str().unwrap();
    let o = ferry(&["digest", "--certs-dir", certs_d, &dst]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), digest);
    let back = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args([
            "copy",
            "-q",
            &dst,
            &format!("oci:{}:v1", back.path().display()),
        ])
        .env("DOCKER_CONFIG", "/nonexistent")
        .env("FERRY_CERTS_DIR", certs_d)
        .output()
        .unwrap();
    assert!(o.status.success(), "FERRY_CERTS_DIR: {}", stderr(&o));

    // Unusable files are bad input (exit 2) naming the file, before any request.
    std::fs::remove_file(host_dir.join("client.key")).unwrap();
    let o = ferry(&["digest", "--certs-dir", certs_d, &dst]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("client.cert: no client.key beside it"),
        "{}",
        stderr(&o)
    );
    let garbage = write(files.path(), "garbage.pem", "not a key\n");
    let o = ferry(&[
        "digest",
        "--certs-dir",
        no_certs_d,
        "--ca-file",
        server_ca,
        "--cert-file",
        &cert_file,
        "--key-file",
        &garbage,
        &dst,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("garbage.pem: no PEM private key"),
        "{}",
        stderr(&o)
    );
    let o = ferry(&["digest", "--cert-file", &cert_file, &dst]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a certificate without its key: {}",
        stderr(&o)
    );
}
