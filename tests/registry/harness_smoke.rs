//! The harness starts a real registry that answers the /v2/ ping.

#[test]
fn registry_starts_and_answers() {
    let reg = crate::support::registry::Registry::start();
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/", reg.addr))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}
