//! Image references parsed once at the edge: registry repositories, OCI layout directories and
//! `oci-archive:` files.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry that unqualified names (`alpine`) refer to.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's API.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Where API requests for `registry` go: its own name, except Docker Hub's `docker.io`, served
/// by `registry-1.docker.io`. The one mapping; [`Registry`] is its public face.
fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        DOCKER_HUB_API
    } else {
        registry
    }
}

/// A registry as the user named it (`docker.io`, `localhost:5000`): where its API lives, and the
/// key its credentials are stored under.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Registry(String);

impl Registry {
    pub fn new(name: &str) -> Registry {
        Registry(name.to_string())
    }

    /// The name as written (messages).
    pub fn name(&self) -> &str {
        &self.0
    }

    /// `host[:port]` API requests go to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.0)
    }

    /// The key credentials are looked up under: the name, not the API host (`docker.io`).
    pub fn credential_key(&self) -> &str {
        &self.0
    }
}

/// A tag the distribution spec allows, checked once where it is read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tag(String);

impl std::str::FromStr for Tag {
    type Err = String;

    fn from_str(s: &str) -> Result<Tag, String> {
        if is_valid_tag(s) {
            Ok(Tag(s.to_string()))
        } else {
            Err(format!(
                "{s:?} is not a valid tag (up to 128 of [A-Za-z0-9_.-], not starting with . or -)"
            ))
        }
    }
}

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an image lives: a repository in a registry or an OCI image layout directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageRef {
    Registry(RegistryRef),
    Layout(LayoutRef),
}

/// `[registry[:port]/]repository[:tag][@digest]`, normalised.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryRef {
    /// `host[:port]` as the user wrote it (Docker Hub aliases become `docker.io`).
    pub registry: String,
    /// Path inside the registry, e.g. `library/alpine`.
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// `oci:PATH[:TAG]` or `oci:PATH@DIGEST`; `oci-archive:FILE[:TAG]` (a tar of a layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    pub path: PathBuf,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
    /// Whether `path` is a directory or a tar file holding one.
    pub kind: LayoutKind,
}

/// How an OCI image layout is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayoutKind {
    /// `oci:DIR`: the layout's directory.
    Directory,
    /// `oci-archive:FILE`: a tar (plain, gzip'd or zstd'd) of the layout's files.
    Archive,
    /// `docker-archive:FILE`: the `docker save` format; the "tag" is a docker reference
    /// (`NAME[:TAG]`) or `@N`, an index into its `manifest.json`.
    DockerArchive,
}

impl LayoutKind {
    /// The transport prefix, with its colon.
    pub fn prefix(self) -> &'static str {
        match self {
            LayoutKind::Directory => "oci:",
            LayoutKind::Archive => "oci-archive:",
            LayoutKind::DockerArchive => "docker-archive:",
        }
    }
}

/// A reference that could not be parsed; shows the input and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

fn err(input: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// The transports skopeo (containers/image) knows besides `docker://` and `oci:`. Written
/// `NAME:…`, they would otherwise read as a Docker Hub repository with a tag
/// (`docker-daemon:alpine` as `docker.io/library/docker-daemon:alpine`).
const OTHER_TRANSPORTS: [&str; 6] = [
    "containers-storage",
    "dir",
    "docker-daemon",
    "ostree",
    "sif",
    "tarball",
];

/// The transport named by `s` when it is one ferry does not speak: a `scheme://` other than
/// `docker://`, or one of [`OTHER_TRANSPORTS`] followed by `:`.
fn unsupported_transport(s: &str) -> Option<&str> {
    if let Some((scheme, _)) = s.split_once("://") {
        let plausible = scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if scheme != "docker" && !scheme.is_empty() && plausible {
            return Some(scheme);
        }
    }
    let (prefix, _) = s.split_once(':')?;
    OTHER_TRANSPORTS.contains(&prefix).then_some(prefix)
}

fn check_transport(s: &str) -> Result<(), ReferenceError> {
    match unsupported_transport(s) {
        Some(t) => Err(err(
            s,
            format!("transport {t} is not supported (supported: docker://, oci:, oci-archive:, docker-archive:)"),
        )),
        None => Ok(()),
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("oci:") {
            return parse_layout(s, rest, LayoutKind::Directory).map(ImageRef::Layout);
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            return parse_layout(s, rest, LayoutKind::Archive).map(ImageRef::Layout);
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            return parse_docker_archive(s, rest).map(ImageRef::Layout);
        }
        check_transport(s)?;
        let rest = s.strip_prefix("docker://").unwrap_or(s);
        RegistryRef::parse_with_input(s, rest).map(ImageRef::Registry)
    }
}

impl FromStr for RegistryRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        check_transport(s)?;
        Self::parse_with_input(s, s.strip_prefix("docker://").unwrap_or(s))
    }
}

/// True for a valid tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `docker-archive:PATH[:REF]` (as skopeo splits it, at the first `:`): REF is a docker
/// reference without digest, or `@N`.
fn parse_docker_archive(input: &str, rest: &str) -> Result<LayoutRef, ReferenceError> {
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(err(
            input,
            "docker-archive: needs a file path, e.g. docker-archive:./out.tar:app:1",
        ));
    }
    if let Some(r) = reference {
        if let Some(n) = r.strip_prefix('@') {
            if n.parse::<usize>().is_err() {
                return Err(err(
                    input,
                    format!("@{n}: expected @N, an image's index in manifest.json"),
                ));
            }
        } else {
            let parsed = RegistryRef::parse_with_input(input, r)?;
            if parsed.digest.is_some() {
                return Err(err(
                    input,
                    "a docker-archive reference takes NAME[:TAG], not a digest",
                ));
            }
        }
    }
    Ok(LayoutRef {
        path: PathBuf::from(path),
        tag: reference.map(str::to_string),
        digest: None,
        kind: LayoutKind::DockerArchive,
    })
}

/// Whether an `oci-archive:` path is complete before its first `:` (standard input, an
/// existing file, or a name ending like an archive): the rest is then a ref name, which may
/// hold `/` and `:` (`oci-archive:mirror.tar:team/api:1.4`).
fn archive_path_first(p: &str) -> bool {
    p == "-"
        || [".tar", ".tar.gz", ".tgz", ".tar.zst", ".tzst"]
            .iter()
            .any(|ext| p.ends_with(ext))
        || std::path::Path::new(p).is_file()
}

/// A ref name as OCI layouts allow it: non-empty, printable, no spaces, no `@`.
fn is_ref_name(r: &str) -> bool {
    !r.is_empty() && r.len() <= 255 && r.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
}

fn parse_layout(input: &str, rest: &str, kind: LayoutKind) -> Result<LayoutRef, ReferenceError> {
    if kind == LayoutKind::Archive {
        if let Some((p, r)) = rest.split_once(':') {
            if archive_path_first(p)
                && (r.contains('/') || r.contains(':'))
                && !r.starts_with("sha256:")
            {
                if !is_ref_name(r) {
                    return Err(err(input, format!("{r:?} is not a valid ref name")));
                }
                return Ok(LayoutRef {
                    path: PathBuf::from(p),
                    tag: Some(r.to_string()),
                    digest: None,
                    kind,
                });
            }
        }
    }
    if rest.is_empty() {
        let why = match kind {
            LayoutKind::Directory => "oci: needs a directory path, e.g. oci:./out:latest",
            LayoutKind::Archive => {
                "oci-archive: needs a file path, e.g. oci-archive:./out.tar:latest"
            }
            LayoutKind::DockerArchive => "docker-archive: needs a file path",
        };
        return Err(err(input, why));
    }
    let (rest, digest) = match rest.rsplit_once('@') {
        Some((p, d)) => (
            p,
            Some(d.parse::<Digest>().map_err(|e| err(input, e.reason))?),
        ),
        None => (rest, None),
    };
    // `oci:PATH:sha256:HEX` would read as the tag HEX of the directory `PATH:sha256`.
    if let Some((p, hex)) = rest.rsplit_once(':') {
        if p.ends_with(":sha256") && hex.len() == 64 {
            let why = format!(
                "a digest follows '@', not ':' ({}PATH@sha256:{hex})",
                kind.prefix()
            );
            return Err(err(input, why));
        }
    }
    // A tag is whatever follows the last ':' as long as it is not part of a path component.
    let (path, tag) = match rest.rsplit_once(':') {
        Some((p, t)) if !t.contains('/') && !p.is_empty() => {
            if !is_valid_tag(t) {
                return Err(err(input, format!("{t:?} is not a valid tag")));
            }
            (p, Some(t.to_string()))
        }
        _ => (rest, None),
    };
    if digest.is_some() && tag.is_some() {
        let why = format!(
            "an {} reference takes a tag or a digest, not both",
            kind.prefix()
        );
        return Err(err(input, why));
    }
    Ok(LayoutRef {
        path: PathBuf::from(path),
        tag,
        digest,
        kind,
    })
}

fn is_path_component(c: &str) -> bool {
    // [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn is_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.contains(':') {
        return host.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl RegistryRef {
    fn parse_with_input(input: &str, s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(err(input, "empty reference"));
        }
        if s.len() > 4096 {
            return Err(err(input, "reference is too long"));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => (
                n,
                Some(d.parse::<Digest>().map_err(|e| err(input, e.reason))?),
            ),
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = name_tag.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match name_tag[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                let t = &name_tag[i + 1..];
                if !is_valid_tag(t) {
                    return Err(err(input, format!("{t:?} is not a valid tag")));
                }
                (&name_tag[..i], Some(t.to_string()))
            }
            None => (name_tag, None),
        };
        let (registry, repo) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                if !is_domain(first) {
                    return Err(err(
                        input,
                        format!("{first:?} is not a valid registry host"),
                    ));
                }
                (first.to_string(), rest.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
                DOCKER_HUB.to_string()
            }
            _ => registry,
        };
        if repo.is_empty() {
            return Err(err(input, "missing repository name"));
        }
        if let Some(bad) = repo.split('/').find(|c| !is_path_component(c)) {
            return Err(err(
                input,
                format!("repository component {bad:?} must be lowercase letters, digits and single separators (. _ __ -)"),
            ));
        }
        let repository = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo
        };
        if repository.len() > 255 {
            return Err(err(input, "repository name is longer than 255 characters"));
        }
        Ok(RegistryRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The host to send API requests to (`registry-1.docker.io` for Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The tag or digest to fetch: the digest wins; `latest` when neither was given.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        RegistryRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for RegistryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for LayoutRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.kind.prefix(), self.path.display())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Registry(r) => r.fmt(f),
            ImageRef::Layout(l) => l.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_know_their_api_host_and_credential_key() {
        let hub = Registry::new("docker.io");
        assert_eq!(
            (hub.api_host(), hub.credential_key()),
            ("registry-1.docker.io", "docker.io")
        );
        let local = Registry::new("localhost:5000");
        assert_eq!(
            (local.api_host(), local.name()),
            ("localhost:5000", "localhost:5000")
        );
    }

    #[test]
    fn tags_are_checked_once() {
        assert_eq!("1.4.2".parse::<Tag>().unwrap().as_str(), "1.4.2");
        for bad in ["", ".x", "-x", "a:b", &"x".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?}");
        }
    }

    fn reg(s: &str) -> RegistryRef {
        match s.parse::<ImageRef>().unwrap() {
            ImageRef::Registry(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = reg("alpine");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/alpine", None)
        );
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.reference(), "latest");
        let r = reg("docker://user/app:1.0");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "user/app", Some("1.0"))
        );
        assert_eq!(reg("index.docker.io/library/busybox").registry, "docker.io");
    }

    #[test]
    fn registries_ports_tags_digests() {
        let d = Digest::of(b"x");
        let r = reg(&format!("127.0.0.1:5000/team/api:feature-x@{d}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "team/api");
        assert_eq!(r.tag.as_deref(), Some("feature-x"));
        assert_eq!(r.digest.as_ref(), Some(&d));
        assert_eq!(r.reference(), d.to_string());
        assert_eq!(reg("localhost/app").registry, "localhost");
        assert_eq!(reg("ghcr.io/o/r/deep:v1").repository, "o/r/deep");
        assert_eq!(reg("[::1]:5000/app").registry, "[::1]:5000");
    }

    #[test]
    fn layouts() {
        let l = match "oci:/tmp/out:v1".parse::<ImageRef>().unwrap() {
            ImageRef::Layout(l) => l,
            o => panic!("{o:?}"),
        };
        assert_eq!(l.path, PathBuf::from("/tmp/out"));
        assert_eq!(l.tag.as_deref(), Some("v1"));
        let l = match "oci:dir".parse::<ImageRef>().unwrap() {
            ImageRef::Layout(l) => l,
            o => panic!("{o:?}"),
        };
        assert_eq!((l.path, l.tag), (PathBuf::from("dir"), None));
        let d = Digest::of(b"x");
        let l = match format!("oci:a/b@{d}").parse::<ImageRef>().unwrap() {
            ImageRef::Layout(l) => l,
            o => panic!("{o:?}"),
        };
        assert_eq!(l.to_string(), format!("oci:a/b@{d}"));
        let e = format!("oci:a/b:{d}").parse::<ImageRef>().unwrap_err();
        assert!(e.to_string().contains(&format!("oci:PATH@{d}")), "{e}");
    }

    #[test]
    fn archives() {
        let l = match "oci-archive:./x.tar:1".parse::<ImageRef>().unwrap() {
            ImageRef::Layout(l) => l,
            o => panic!("{o:?}"),
        };
        assert_eq!(l.kind, LayoutKind::Archive);
        assert_eq!(
            (l.path.as_path(), l.tag.as_deref()),
            (std::path::Path::new("./x.tar"), Some("1"))
        );
        assert_eq!(l.to_string(), "oci-archive:./x.tar:1");
        let l = match "oci-archive:/a/b.tar.gz".parse::<ImageRef>().unwrap() {
            ImageRef::Layout(l) => l,
            o => panic!("{o:?}"),
        };
        assert_eq!((l.path, l.tag), (PathBuf::from("/a/b.tar.gz"), None));
        let e = "oci-archive:".parse::<ImageRef>().unwrap_err().to_string();
        assert!(e.contains("needs a file path"), "{e}");
    }

    #[test]
    fn other_transports_are_refused_and_hosts_with_ports_are_not_mistaken_for_them() {
        for (input, transport) in [
            ("docker-daemon:alpine", "docker-daemon"),
            ("dir:/tmp/x", "dir"),
            ("containers-storage:localhost/app", "containers-storage"),
            ("https://ghcr.io/o/r", "https"),
            ("docker-daemon://alpine", "docker-daemon"),
        ] {
            let e = input.parse::<ImageRef>().expect_err(input).to_string();
            let want = format!(
                "transport {transport} is not supported (supported: docker://, oci:, oci-archive:, docker-archive:)"
            );
            assert!(e.contains(&want), "{input}: {e}");
            assert!(input.parse::<RegistryRef>().is_err(), "{input}");
        }
        assert_eq!(reg("localhost:5000/x").registry, "localhost:5000");
        assert_eq!(reg("host:5000/repo:1").registry, "host:5000");
        assert_eq!(reg("docker://host:5000/repo").repository, "repo");
        let dind = reg("docker:dind");
        assert_eq!(
            (dind.repository.as_str(), dind.tag.as_deref()),
            ("library/docker", Some("dind"))
        );
        assert_eq!(reg("registry:2").repository, "library/registry");
        assert_eq!(reg("dir/app:1").repository, "dir/app");
    }

    #[test]
    fn rejects_bad_references() {
        for bad in [
            "",
            "UPPER",
            "app:",
            "app:-bad",
            "app@sha256:123",
            "reg.io/",
            "reg.io/a//b",
            "a/b_-c",
            "reg..io/app",
            "oci:",
            &format!("app:{}", "t".repeat(129)),
        ] {
            let e = bad.parse::<ImageRef>().expect_err(bad);
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }
}
